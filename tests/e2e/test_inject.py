"""HTTP injection (POST /v1/messages): delivered to the sink with the right
headers, DKIM and MIME structure; per-recipient results; 4xx cases; and
durability: every message acknowledged with 200 survives kill -9."""
import email
import email.policy
import json
import threading
import time

from conftest import wait_until


def inject(d, messages, tenant="local", token=None):
    return d.api("POST", f"/v1/messages?tenant={tenant}", {"messages": messages}, token=token)


def test_structured_and_raw_delivered(sink_factory, sluiced_factory, tmp_path):
    sink = sink_factory()
    d = sluiced_factory(api=True).start()
    st, r = inject(d, [
        {"from": "Caf\u00e9 <news@acme.test>", "to": ["u1@gmail.test", "not-an-address"],
         "subject": "H\u00e9llo", "text": "plain body\n.dot line", "html": "<p>html</p>",
         "headers": {"X-Campaign": "c1"}, "stream": "marketing"},
        {"from": "a@acme.test", "to": ["u2@yahoo.test"],
         "raw": "From: a@acme.test\nTo: u2@yahoo.test\nSubject: raw\nMessage-ID: <raw1@acme.test>\n\nraw body\n"},
    ])
    assert st == 200, r
    assert r["accepted"] == 2 and r["rejected"] == 0
    m0 = r["messages"][0]
    assert m0["status"] == "accepted" and len(m0["id"]) == 16
    assert m0["recipients"][0] == {"rcpt": "u1@gmail.test", "status": "accepted"}
    assert m0["recipients"][1]["status"] == "rejected"
    assert "invalid" in m0["recipients"][1]["reason"]
    assert r["messages"][1]["message_id"] == "<raw1@acme.test>"
    sink.wait_messages(2)
    emls = [p.read_bytes() for p in sink.save.glob("*.eml")]
    structured = [e for e in emls if b"X-Campaign: c1" in e][0]
    msg = email.message_from_bytes(structured, policy=email.policy.default)
    assert msg["Subject"] == "H\u00e9llo"
    assert msg["From"].addresses[0].display_name == "Caf\u00e9"
    assert msg["Message-ID"].endswith("@sluice.test>")
    assert msg.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in msg.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n").startswith(
        "plain body\n.dot line")
    assert b"with HTTP id " + m0["id"].encode() in structured
    assert b"stream marketing" in structured
    for e in emls:
        assert b"\n" not in e.replace(b"\r\n", b"")
    ev = d.wait_events("delivered", 2)
    assert {e["id"] for e in ev} == {m0["id"], r["messages"][1]["id"]}


def test_dkim_signed_when_configured(sink_factory, sluiced_factory, tmp_path):
    import subprocess
    from conftest import BUILD
    key = tmp_path / "k.pem"
    subprocess.run([str(BUILD / "sluicectl"), "dkim", "keygen", "--algo", "ed25519-sha256",
                    "--out", str(key)], check=True, capture_output=True)
    sink = sink_factory()
    extra = f"dkim:\n  - domain: acme.test\n    selector: s1\n    key: \"{key}\"\n"
    d = sluiced_factory(api=True, extra=extra).start()
    st, r = inject(d, [{"from": "news@acme.test", "to": ["u@gmail.test"], "text": "hi"}])
    assert st == 200 and r["accepted"] == 1, r
    sink.wait_messages(1)
    eml = next(sink.save.glob("*.eml")).read_bytes()
    assert eml.startswith(b"DKIM-Signature:")


def test_request_errors(sink_factory, sluiced_factory):
    sink_factory()
    d = sluiced_factory(api=True).start()
    st, r = d.api("POST", "/v1/messages?tenant=local", raw=b"{not json")
    assert st == 400 and r["error"]["code"] == "bad_request"
    assert "invalid JSON" in r["error"]["message"]
    st, r = inject(d, [{"from": "a@acme.test", "to": "u@gmail.test", "text": "x"}])
    assert st == 400 and "messages[0].to" in r["error"]["message"]
    st, r = inject(d, [{"from": "a@acme.test", "to": ["u@gmail.test"], "txt": "x"}])
    assert st == 400 and "messages[0].txt: unknown field" in r["error"]["message"]
    st, r = inject(d, [{"from": 1, "to": ["u@gmail.test"], "text": "x"}])
    assert st == 400 and "messages[0].from" in r["error"]["message"]
    st, r = d.api("POST", "/v1/messages", {"messages": []})
    assert st == 400  # an operator must name the tenant
    st, r = inject(d, [{"from": "a@acme.test", "to": ["u@gmail.test"], "text": "x"}],
                   tenant="nosuch")
    assert st == 404
    big = "x" * (2 << 20)
    st, r = inject(d, [{"from": "a@acme.test", "to": ["u@gmail.test"], "text": big}])
    assert st == 413
    st, r = d.api("POST", "/v1/messages?tenant=local", {"messages": []},
                  token="slk_" + "0" * 64)
    assert st == 401


def test_kill9_after_200_loses_nothing(sink_factory, sluiced_factory):
    sink = sink_factory()
    d = sluiced_factory(api=True).start()
    acked, stop = [], threading.Event()

    def client(idx):
        n = 0
        while n < 60 and not stop.is_set():
            batch = [{"from": "load@acme.test", "to": [f"c{idx}-{n + k}@example.test"],
                      "raw": f"From: load@acme.test\r\nSubject: k9\r\n"
                             f"Message-ID: <http-{idx}-{n + k}@load.test>\r\n\r\nbody\r\n"}
                     for k in range(5)]
            try:
                st, r = inject(d, batch)
            except OSError:
                time.sleep(0.2)
                continue
            if st != 200:
                time.sleep(0.2)
                continue
            for m in r["messages"]:
                if m["status"] == "accepted":
                    acked.append(m["message_id"])
            n += 5

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    wait_until(lambda: len(acked) >= 60, 60, "60 acknowledged messages")
    d.kill9()
    time.sleep(0.3)
    d.start()
    for t in threads:
        t.join(120)
    stop.set()
    total = set(acked)

    def all_there():
        got = {m["message_id"] for m in sink.messages()}
        return not (total - got)

    wait_until(all_there, 120, "every acknowledged message at the sink")
