"""Queue visibility and control over the admin API: list, show, pause
stops one domain only, retry-now after a 4xx, purge with events."""
from conftest import wait_until


def inject(d, to, tenant="local"):
    st, r = d.api("POST", f"/v1/messages?tenant={tenant}",
                  {"messages": [{"from": "a@acme.test", "to": to, "text": "x"}]})
    assert st == 200 and r["accepted"] == 1, r
    return r["messages"][0]["id"]


def test_retry_now_and_show(sink_factory, sluiced_factory):
    busy = sink_factory(rules="* data-reply 451 4.3.0 Try again later\n", name="busy")
    d = sluiced_factory(api=True, delivery={"retry_schedule": "[1h]"}).start()
    qid = inject(d, ["b@yahoo.test"])
    d.wait_events("deferred", 1)
    st, m = d.api("GET", f"/v1/messages/{qid}")
    assert st == 200 and m["recipients"][0]["queue"] == "deferred"
    assert m["recipients"][0]["last_response"].startswith("451 4.3.0")
    st, r = d.api("GET", "/v1/queues?by=domain")
    assert st == 200
    row = [i for i in r["items"] if i["key"] == "yahoo.test"][0]
    assert row["deferred"] == 1 and row["last_response"].startswith("451")
    busy.stop()
    ok = sink_factory(name="ok")
    st, r = d.api("POST", "/v1/queues/retry", {"domain": "yahoo.test"})
    assert st == 200 and r["recipients"] == 1
    ok.wait_messages(1, timeout=30)
    st, _ = d.api("GET", f"/v1/messages/{qid}")
    wait_until(lambda: d.api("GET", f"/v1/messages/{qid}")[0] == 404, 20, "message gone")


def test_pause_one_domain_and_purge(sink_factory, sluiced_factory):
    sink = sink_factory()
    d = sluiced_factory(api=True).start()
    st, r = d.api("POST", "/v1/queues/pause", {"domain": "gmail.test"})
    assert st == 200
    q1 = inject(d, ["p@gmail.test"])
    inject(d, ["q@yahoo.test"])
    sink.wait_messages(1)
    ev = d.wait_events("delivered", 1)
    assert ev[0]["domain"] == "yahoo.test"
    st, r = d.api("GET", "/v1/queues?by=domain&domain=gmail.test")
    assert r["items"][0]["paused"] == 1
    st, r = d.api("POST", "/v1/queues/purge", {"domain": "gmail.test"})
    assert st == 200 and r["recipients"] == 1
    ev = d.wait_events("purged", 1)
    assert ev[0]["id"] == q1 and ev[0]["rcpt"] == "p@gmail.test"
    st, r = d.api("POST", "/v1/queues/purge", {})
    assert st == 400
    d.api("POST", "/v1/queues/resume", {"domain": "gmail.test"})
    assert len(sink.messages()) == 1
    assert d.api("GET", f"/v1/messages/{q1}")[0] == 404
