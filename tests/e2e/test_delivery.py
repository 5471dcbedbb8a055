"""Mail flows through sluiced to receivers found in DNS, with retries,
bounces, DSNs, and the per-recipient event log."""
import smtplib

from conftest import MX, message, wait_until


def send(frm, rcpts, msg, port=2525):
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("client.test")
        return c.sendmail(frm, rcpts, msg)


def test_delivers_via_mx_and_implicit_mx(sink_factory, sluiced_factory):
    sink = sink_factory()
    d = sluiced_factory().start()
    ids = {}
    for dom in ("gmail.test", "yahoo.test", "outlook.test", "example.test"):
        mid, msg = message("news@acme.test", f"user@{dom}")
        assert send("news@acme.test", [f"user@{dom}"], msg) == {}
        ids[mid] = dom
    got = sink.wait_messages(4)
    by_id = {m["message_id"]: m for m in got}
    for mid, dom in ids.items():
        assert mid in by_id, f"{mid} for {dom} not delivered"
        assert by_id[mid]["dst"].startswith(MX[dom] + ":")
        assert by_id[mid]["src"] in ("198.51.100.10", "198.51.100.11")
    ev = d.wait_events("delivered", 4)
    e = ev[0]
    for k in ("id", "tenant", "stream", "rcpt", "source_ip", "site", "response", "attempt"):
        assert k in e, k
    assert e["tenant"] == "local" and e["response"].startswith("250")


def test_received_header_and_queue_id(sink_factory, sluiced_factory):
    sink = sink_factory()
    sluiced_factory().start()
    mid, msg = message("a@acme.test", "b@gmail.test")
    with smtplib.SMTP("127.0.0.1", 2525, timeout=10) as c:
        c.ehlo("client.test")
        c.mail("a@acme.test")
        c.rcpt("b@gmail.test")
        code, text = c.data(msg)
    assert code == 250 and b"queued as" in text
    qid = text.split()[-1].decode()
    sink.wait_messages(1)
    eml = sorted(sink.save.glob("*.eml"))[0].read_text()
    assert eml.startswith("Received: from client.test ([127.0.0.1])")
    assert qid in eml.split("\r\n\r\n")[0]


def test_retry_after_4xx_then_delivered(tmp_path, sink_factory, sluiced_factory):
    sink = sink_factory(rules="* data-reply 451 4.3.0 Try again later\n", name="busy")
    d = sluiced_factory().start()
    mid, msg = message("a@acme.test", "b@yahoo.test")
    send("a@acme.test", ["b@yahoo.test"], msg)
    ev = d.wait_events("deferred", 1)
    assert ev[0]["response"].startswith("451 4.3.0")
    sink.stop()
    sink2 = sink_factory(name="ok")
    got = sink2.wait_messages(1, timeout=30)
    assert got[0]["message_id"] == mid
    done = d.wait_events("delivered", 1)
    assert done[0]["attempt"] >= 2


def test_bounce_on_5xx_with_dsn(sink_factory, sluiced_factory):
    sink = sink_factory(rules="gmail.test reject-user nobody\n")
    d = sluiced_factory().start()
    mid, msg = message("sender@acme.test", "nobody@gmail.test")
    send("sender@acme.test", ["nobody@gmail.test", "someone@gmail.test"], msg)
    b = d.wait_events("bounced", 1)
    assert b[0]["rcpt"] == "nobody@gmail.test"
    assert b[0]["response"].startswith("550 5.1.1")
    d.wait_events("delivered", 2)  # someone@gmail.test and the DSN
    dsn = wait_until(lambda: [m for m in sink.messages() if m["mail_from"] == ""], 20, "DSN")
    assert dsn[0]["rcpts"] == ["sender@acme.test"]
    eml = sorted(sink.save.glob("*.eml"))
    text = "".join(p.read_text() for p in eml)
    assert "multipart/report" in text and "Final-Recipient: rfc822; nobody@gmail.test" in text


def test_null_mx_bounces_without_connecting(sink_factory, sluiced_factory):
    sink_factory()
    d = sluiced_factory().start()
    mid, msg = message("a@acme.test", "x@nullmx.test")
    send("a@acme.test", ["x@nullmx.test"], msg)
    b = d.wait_events("bounced", 1)
    assert b[0]["response"].startswith("5")


def test_static_route(sink_factory, sluiced_factory):
    sink = sink_factory(addrs=["203.0.113.28:2526"])
    sluiced_factory(routes={"routed.test": "203.0.113.28:2526"}).start()
    mid, msg = message("a@acme.test", "x@routed.test")
    send("a@acme.test", ["x@routed.test"], msg)
    assert sink.wait_messages(1)[0]["message_id"] == mid


def test_metrics_endpoint(sink_factory, sluiced_factory):
    sink_factory()
    d = sluiced_factory().start()
    mid, msg = message("a@acme.test", "b@gmail.test")
    send("a@acme.test", ["b@gmail.test"], msg)
    d.wait_events("delivered", 1)
    m = d.metrics()
    assert 'sluice_messages_accepted_total{tenant="local",stream="transactional"} 1' in m
    assert 'sluice_recipient_outcomes_total{outcome="delivered"} 1' in m


def test_connection_limits_and_reuse(sink_factory, sluiced_factory):
    """One connection per domain, two messages per connection: a queue of
    ten still drains, over five connections."""
    sink = sink_factory()
    d = sluiced_factory(delivery={"max_connections_per_domain": 1,
                                  "max_messages_per_connection": 2}).start()
    with smtplib.SMTP("127.0.0.1", 2525, timeout=10) as c:
        for i in range(10):
            mid, msg = message("a@acme.test", f"u{i}@outlook.test")
            c.sendmail("a@acme.test", [f"u{i}@outlook.test"], msg)
    sink.wait_messages(10)
    m = d.metrics()
    conns = int(next(l.split()[-1] for l in m.splitlines()
                     if l.startswith("sluice_egress_connections_total")))
    # Five when messages arrive faster than a connection's idle wait; a
    # slow machine may end an idle connection early, never reuse more.
    assert 5 <= conns <= 7, m


def test_streams_go_out_from_their_pools(sink_factory, sluiced_factory):
    """A tenant's marketing stream has its own pool (its own source IP);
    transactional mail keeps the default pool."""
    sink = sink_factory()
    sluiced_factory(pools={"mkt": ["198.51.100.12"]},
                    relay_tenant_pools={"marketing_pool": "mkt"}).start()
    mid_tx, msg_tx = message("a@acme.test", "t@gmail.test")
    mid_mkt, msg_mkt = message("a@acme.test", "m@gmail.test",
                               extra_headers="X-Sluice-Stream: marketing\r\n")
    send("a@acme.test", ["t@gmail.test"], msg_tx)
    send("a@acme.test", ["m@gmail.test"], msg_mkt)
    got = {m["message_id"]: m for m in sink.wait_messages(2)}
    assert got[mid_mkt]["src"] == "198.51.100.12"
    assert got[mid_tx]["src"] in ("198.51.100.10", "198.51.100.11")
    # The control header is not passed on.
    emls = "".join(p.read_text() for p in sink.save.glob("*.eml"))
    assert "X-Sluice-Stream" not in emls
