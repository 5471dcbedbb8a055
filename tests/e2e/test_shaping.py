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
    times = sorted(m["time"] for m in got)
    # 12 messages at 5/s (a burst of one, then one every 200 ms) take at
    # least ~2 s however fast the machine is.
    assert times[-1] - times[0] >= 1.8, times
    # One connection at a time, three messages each: exactly four.
    assert egress_connections(d) == 4
    ev = d.events("delivered")
    assert {e["site"] for e in ev} == {"mta5.am0.yahoodns.test"}
