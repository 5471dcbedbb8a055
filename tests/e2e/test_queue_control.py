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


def ctl(d, *args):
    import os
    import subprocess
    from conftest import SLUICECTL
    env = dict(os.environ, SLUICE_API=d.api_url, SLUICE_TOKEN=d.admin_token)
    return subprocess.run([str(SLUICECTL), *args], capture_output=True, text=True, env=env,
                          timeout=30)


def test_sluicectl_queue(sink_factory, sluiced_factory):
    """The same operations from the command line: tables, --json, errors."""
    import json
    sink = sink_factory()
    d = sluiced_factory(api=True).start()
    r = ctl(d, "queue", "pause", "--domain", "gmail.test")
    assert r.returncode == 0 and "pause: 0 recipient(s)" in r.stdout, r.stderr
    qid = inject(d, ["p@gmail.test"])
    wait_until(lambda: "gmail.test" in ctl(d, "queue", "list").stdout, 10, "queue row")
    r = ctl(d, "queue", "list", "--json")
    row = [i for i in json.loads(r.stdout)["items"] if i["key"] == "gmail.test"][0]
    assert row["paused"] == 1
    r = ctl(d, "queue", "show", qid)
    assert r.returncode == 0 and "p@gmail.test" in r.stdout and "paused" in r.stdout, r.stdout
    r = ctl(d, "queue", "purge")
    assert r.returncode == 2 and "refusing to purge everything" in r.stderr
    r = ctl(d, "queue", "show", "00000000000000ff")
    assert r.returncode == 1 and "404" in r.stderr
    r = ctl(d, "queue", "resume", "--domain", "gmail.test")
    assert r.returncode == 0 and "resume: 1 recipient(s)" in r.stdout, r.stdout
    sink.wait_messages(1)


def test_events_over_api_and_cli(sink_factory, sluiced_factory):
    """GET /v1/events tails the event log; "next" continues without gaps;
    a tenant token sees only its own; sluicectl events prints them."""
    import json
    sink_factory()
    d = sluiced_factory(api=True).start()
    q1 = inject(d, ["e1@gmail.test"])
    d.wait_events("delivered", 1)
    st, r = d.api("GET", "/v1/events?event=delivered")
    assert st == 200 and [e["id"] for e in r["items"]] == [q1], r
    cursor = r["next"]
    q2 = inject(d, ["e2@yahoo.test"])
    d.wait_events("delivered", 2)
    st, r = d.api("GET", f"/v1/events?event=delivered&after={cursor}")
    assert st == 200 and [e["id"] for e in r["items"]] == [q2], r
    st, r = d.api("GET", f"/v1/events?after={r['next']}")
    assert st == 200 and r["items"] == []
    assert d.api("GET", "/v1/events?after=-1")[0] == 400
    # A tenant token: its own tenant's events only.
    assert d.api("POST", "/v1/tenants", {"name": "other"})[0] == 201
    st, tok = d.api("POST", "/v1/tokens", {"role": "tenant", "tenant": "other"})
    assert st == 201, tok
    st, r = d.api("GET", "/v1/events", token=tok["token"])
    assert st == 200 and r["items"] == []
    assert d.api("GET", "/v1/events?tenant=local", token=tok["token"])[0] == 404
    r = ctl(d, "events", "--event", "delivered")
    assert r.returncode == 0 and q1 in r.stdout and q2 in r.stdout, r.stderr
    r = ctl(d, "events", "--json", "--limit", "1")
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["id"] == q2
