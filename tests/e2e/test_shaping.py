"""Per-destination shaping from the rules file: the provider is found from
the MX hosts, and its limits (connections, messages per connection, message
rate) shape what goes out."""
import smtplib

from conftest import ROOT, message


RULES = """\
default:
  max_connections: 4
providers:
  yahoo:
    max_connections: 1
    max_messages_per_connection: 3
    message_rate: 5/s
"""


def egress_connections(d):
    m = d.metrics()
    return int(next(l.split()[-1] for l in m.splitlines()
                    if l.startswith("sluice_egress_connections_total")))


def test_provider_rules_shape_delivery(tmp_path, sink_factory, sluiced_factory):
    sink = sink_factory()
    rules = tmp_path / "shaping.yaml"
    rules.write_text(RULES)
    extra = (f"shaping:\n  rules: \"{rules}\"\n"
             f"  providers: \"{ROOT / 'configs/providers.conf'}\"\n")
    d = sluiced_factory(extra=extra).start()
    with smtplib.SMTP("127.0.0.1", 2525, timeout=10) as c:
        for i in range(12):
            _, msg = message("a@acme.test", f"u{i}@yahoo.test")
            c.sendmail("a@acme.test", [f"u{i}@yahoo.test"], msg)
    got = sink.wait_messages(12, timeout=60)
    # The limits hold per (source IP, site); the pool has two IPs. Each
    # IP's n messages at 5/s (a burst of one, then one every 200 ms) take
    # at least ~(n - 1) / 5 s however fast the machine is.
    for ip in {m["src"] for m in got}:
        times = sorted(m["time"] for m in got if m["src"] == ip)
        assert times[-1] - times[0] >= (len(times) - 1) / 5 * 0.9, (ip, times)
    # Three messages per connection: exactly four connections.
    assert egress_connections(d) == 4
    ev = d.events("delivered")
    assert {e["site"] for e in ev} == {"mta5.am0.yahoodns.test"}


def test_domain_retry_schedule_from_rules(tmp_path, sink_factory, sluiced_factory):
    """delivery.retry_schedule says an hour; the domain's rule says 1 s."""
    from datetime import datetime
    sink_factory(rules="* data-reply 451 4.3.0 Try again later\n")
    rules = tmp_path / "shaping.yaml"
    rules.write_text("domains:\n  outlook.test:\n    retry_schedule: [1s]\n")
    d = sluiced_factory(extra=f"shaping:\n  rules: \"{rules}\"\n",
                        delivery={"retry_schedule": "[1h]"}).start()
    for dom in ("outlook.test", "gmail.test"):
        _, msg = message("a@acme.test", f"u@{dom}")
        with smtplib.SMTP("127.0.0.1", 2525, timeout=10) as c:
            c.sendmail("a@acme.test", [f"u@{dom}"], msg)
    d.wait_events("deferred", 2)

    def wait_s(e):
        t = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
        return t(e["next_attempt"]) - t(e["time"])

    by_dom = {e["domain"]: wait_s(e) for e in d.events("deferred")}
    assert by_dom["outlook.test"] < 5, by_dom
    assert by_dom["gmail.test"] > 3000, by_dom
