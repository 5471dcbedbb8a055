"""Sites, observed rates and connection limits at the sink, reload.

The sink logs every message's source IP and time, and every connection's
[open, last bytes from the client] interval (--conn-log), so concurrency and
rates are measured on the receiving side. No assertion is on how fast
sluiced is: rates are the configured shaping, compared with what the sink
saw."""
import os
import signal
import smtplib
import time

from conftest import ROOT, message, wait_until

GOOGLE_SITE = "alt1.gmail-smtp-in.l.google.test,gmail-smtp-in.l.google.test"
PROVIDERS = ROOT / "configs/providers.conf"


def shaping_extra(rules):
    return f"shaping:\n  rules: \"{rules}\"\n  providers: \"{PROVIDERS}\"\n"


def submit(msgs, port=2525):
    """msgs: [(rcpt, stream or None)]; one SMTP session; returns Message-IDs."""
    ids = []
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        for rcpt, stream in msgs:
            extra = f"X-Sluice-Stream: {stream}\r\n" if stream else ""
            mid, msg = message("a@acme.test", rcpt, extra_headers=extra)
            c.sendmail("a@acme.test", [rcpt], msg)
            ids.append(mid)
    return ids


def by_src(conns):
    """{source IP: its connections}: limits hold per (source IP, site)."""
    out = {}
    for c in conns:
        out.setdefault(c["src"], []).append(c)
    return out


def max_concurrent(conns):
    """Peak number of overlapping [open, last] intervals."""
    ev = sorted([(c["open"], 1) for c in conns] + [(c["last"], -1) for c in conns],
                key=lambda e: (e[0], e[1]))
    cur = peak = 0
    for _, d in ev:
        cur += d
        peak = max(peak, cur)
    return peak


def test_domains_of_one_site_share_max_connections(tmp_path, sink_factory, sluiced_factory):
    """gmail.test and googlehosted.test have the same MX set: one site,
    one max_connections per source IP for both (per-domain state would
    allow 2 + 2 from each IP)."""
    sink = sink_factory(rules="* delay 100ms\n")
    rules = tmp_path / "shaping.yaml"
    rules.write_text(f"sites:\n  \"{GOOGLE_SITE}\":\n    max_connections: 2\n"
                     "    max_messages_per_connection: 4\n")
    sluiced_factory(extra=shaping_extra(rules)).start()
    n = 24
    submit([(f"u{i}@{'gmail.test' if i % 2 else 'googlehosted.test'}", None)
            for i in range(n)])
    got = sink.wait_messages(n, timeout=90)
    rcpt_domains = {m["rcpts"][0].split("@")[1] for m in got}
    assert rcpt_domains == {"gmail.test", "googlehosted.test"}
    # A connection is logged when it ends (an idle one after a while).
    conns = wait_until(lambda: sum(c["messages"] for c in sink.connections()) >= n
                       and sink.connections(), 30, "every connection logged")
    google = [c for c in conns if c["dst"].startswith("203.0.113.25")]
    for ip, cs in by_src(google).items():
        print(f"peak concurrent connections from {ip} to the google site: "
              f"{max_concurrent(cs)}")
        assert max_concurrent(cs) <= 2, (ip, cs)
    assert sum(c["messages"] for c in google) == n


def test_message_rate_observed_at_sink(tmp_path, sink_factory, sluiced_factory):
    """message_rate 20/s per source IP over 200 messages: the steady-state
    rate the sink sees from each IP is within 5% of the configured rate."""
    sink = sink_factory()
    rules = tmp_path / "shaping.yaml"
    rules.write_text("providers:\n  yahoo:\n    message_rate: 20/s\n    max_connections: 3\n")
    sluiced_factory(extra=shaping_extra(rules)).start()
    n = 200
    submit([(f"u{i}@yahoo.test", None) for i in range(n)])
    got = sink.wait_messages(n, timeout=120)
    rates = []
    for ip in sorted({m["src"] for m in got}):
        t = sorted(m["time"] for m in got if m["src"] == ip)
        # Skip the initial burst and the tail: the middle 80%.
        lo, hi = len(t) // 10, len(t) - 1 - len(t) // 10
        rate = (hi - lo) / (t[hi] - t[lo])
        print(f"observed {rate:.3f}/s from {ip} over its messages {lo}..{hi} "
              "(configured 20/s)")
        rates.append(rate)
        assert abs(rate - 20) <= 1.0, (ip, rate)
    (sink.dir / "rate.txt").write_text("".join(f"{r:.4f}\n" for r in rates))
    for ip, cs in by_src(sink.connections()).items():
        assert max_concurrent(cs) <= 3, (ip, cs)


def test_connections_per_site_never_above_max(tmp_path, sink_factory, sluiced_factory):
    """Under a backlog with a slow receiver, the sink never sees more than
    max_connections concurrent sessions from one source IP to the site."""
    sink = sink_factory(rules="* delay 50ms\n")
    rules = tmp_path / "shaping.yaml"
    rules.write_text("default:\n  max_connections: 3\n  max_messages_per_connection: 5\n")
    sluiced_factory(extra=shaping_extra(rules)).start()
    n = 60
    submit([(f"u{i}@outlook.test", None) for i in range(n)])
    sink.wait_messages(n, timeout=90)
    conns = wait_until(lambda: sum(c["messages"] for c in sink.connections()) >= n
                       and sink.connections(), 30, "every connection logged")
    for ip, cs in by_src(conns).items():
        assert max_concurrent(cs) <= 3, (ip, cs)
    assert len(conns) >= n // 5


def test_transactional_overtakes_marketing_backlog(tmp_path, sink_factory, sluiced_factory):
    """A marketing backlog at a rate-limited destination drains over ~8 s;
    transactional mail sent after it is delivered long before the backlog
    is gone (relative: its latency is a small fraction of the drain)."""
    sink = sink_factory()
    rules = tmp_path / "shaping.yaml"
    rules.write_text("providers:\n  microsoft:\n    message_rate: 10/s\n")
    sluiced_factory(extra=shaping_extra(rules)).start()
    n_mkt, n_tx = 80, 5
    submit([(f"m{i}@outlook.test", "marketing") for i in range(n_mkt)])
    sink.wait_messages(3, timeout=30)  # the backlog is draining
    sent = time.time()
    tx_ids = submit([(f"t{i}@outlook.test", None) for i in range(n_tx)])
    got = sink.wait_messages(n_mkt + n_tx, timeout=120)
    by_id = {m["message_id"]: m["time"] for m in got}
    tx_latency = max(by_id[i] for i in tx_ids) - sent
    mkt_times = sorted(t for i, t in by_id.items() if i not in tx_ids)
    drain = mkt_times[-1] - sent
    print(f"transactional latency {tx_latency:.3f}s, marketing drain {drain:.3f}s")
    assert tx_latency < drain / 4, (tx_latency, drain)


RELOAD_OLD = "providers:\n  yahoo:\n    max_connections: 1\n    message_rate: 5/s\n"
RELOAD_NEW = "providers:\n  yahoo:\n    max_connections: 3\n    message_rate: 50/s\n"


def test_sighup_reloads_shaping(tmp_path, sink_factory, sluiced_factory):
    """SIGHUP: a broken rules file keeps the old rules (error with its
    line in the log, no mail lost); a good one applies the new limits."""
    sink = sink_factory(rules="* delay 50ms\n")
    rules = tmp_path / "shaping.yaml"
    rules.write_text(RELOAD_OLD)
    d = sluiced_factory(extra=shaping_extra(rules)).start()
    submit([(f"a{i}@yahoo.test", None) for i in range(10)])
    sink.wait_messages(2, timeout=30)
    rules.write_text(RELOAD_OLD + "    max_conections: 4\n")
    d.proc.send_signal(signal.SIGHUP)
    err = d.dir / "sluiced.err"
    wait_until(lambda: "keeping the old shaping rules" in err.read_text(), 10, "reload error")
    assert "shaping.yaml:5:" in err.read_text()
    got = sink.wait_messages(10, timeout=60)
    conns = sink.connections()
    for ip, cs in by_src(conns).items():
        assert max_concurrent(cs) <= 1, (ip, cs)
    # The old rate still holds per source IP: 5/s.
    for ip in {m["src"] for m in got}:
        old = sorted(m["time"] for m in got if m["src"] == ip)
        if len(old) >= 4:
            assert (len(old) - 2) / (old[-1] - old[1]) < 6.5, (ip, old)
    rules.write_text(RELOAD_NEW)
    d.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "reload: shaping rules" in err.read_text(), 10, "reload")
    n_before = len(sink.connections())
    submit([(f"b{i}@yahoo.test", None) for i in range(60)])
    got = sink.wait_messages(70, timeout=60)
    ids = {m["message_id"] for m in got}
    assert len(ids) == 70  # nothing lost or duplicated across reloads
    new = sorted(m["time"] for m in got if m["rcpts"][0].startswith("b"))
    for ip in {m["src"] for m in got}:
        t = sorted(m["time"] for m in got if m["src"] == ip and m["rcpts"][0].startswith("b"))
        rate = (len(t) - 1) / (t[-1] - t[0])
        assert rate > 10, (ip, rate)  # well above the old 5/s
        assert rate <= 50 * 1.1, (ip, rate)
    conns = wait_until(lambda: len(sink.connections()) > n_before and sink.connections(),
                       30, "connections")
    after = [c for c in conns if c["open"] >= new[0] - 1]
    for ip, cs in by_src(after).items():
        assert max_concurrent(cs) <= 3, (ip, cs)


def test_fcrdns_checked_at_start(tmp_path, sluiced_factory):
    """Each pool IP's PTR must name its EHLO host, which must resolve back
    to it: 198.51.100.10 does; 198.51.100.11's EHLO host resolves elsewhere;
    198.51.100.12 has no PTR. Mismatches are warnings, shown by
    `sluicectl ip list`."""
    import subprocess
    from conftest import SLUICECTL
    d = sluiced_factory(api=True, pools={"x": ["198.51.100.12"]}).start()
    err = d.dir / "sluiced.err"
    wait_until(lambda: err.read_text().count("rDNS of") >= 3, 20, "rDNS checks logged")
    log = err.read_text()
    assert "rDNS of 198.51.100.10 (pool default): mta1.sluice.test, forward-confirmed" in log
    assert "198.51.100.11 (pool default, EHLO mta2.sluice.test): mismatch" in log
    assert "198.51.100.12 (pool x, EHLO x.sluice.test): mismatch: no PTR record" in log
    st, body = d.api("GET", "/v1/ips")
    assert st == 200, body
    by_ip = {i["ip"]: i for i in body["items"]}
    assert by_ip["198.51.100.10"]["fcrdns"] == "ok"
    assert by_ip["198.51.100.10"]["rdns"] == "mta1.sluice.test"
    assert by_ip["198.51.100.11"]["fcrdns"] == "mismatch"
    assert by_ip["198.51.100.12"]["fcrdns"] == "mismatch"
    assert by_ip["198.51.100.12"]["pool"] == "x"
    env = dict(os.environ, SLUICE_API=d.api_url, SLUICE_TOKEN=d.admin_token)
    out = subprocess.run([str(SLUICECTL), "ip", "list"], capture_output=True, text=True,
                         env=env, timeout=30)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:6] == ["POOL", "IP", "EHLO", "RDNS", "FCRDNS", "TRANSPORT"]
    row = next(l for l in lines if "198.51.100.10" in l).split()
    assert row[:6] == ["default", "198.51.100.10", "mta1.sluice.test", "mta1.sluice.test",
                       "ok", "tcp4"]
    assert any("198.51.100.11" in l and "mismatch" in l for l in lines)


IP_RULES = """\
default:
  max_connections: 3
providers:
  google:
    message_rate: 10/s
ips:
  "198.51.100.11":
    providers:
      google: {max_connections: 1, message_rate: 120/min}
"""


def explain(rules, ip, domain):
    """`sluicectl shaping explain --json` for (ip, domain) at the google site."""
    import json
    import subprocess
    from conftest import SLUICECTL
    mx = GOOGLE_SITE.split(",")
    out = subprocess.run([str(SLUICECTL), "shaping", "explain", "--ip", ip, "--domain", domain,
                          "--mx", mx[0], "--mx", mx[1], "--pool", "default",
                          "--shaping", str(rules), "--providers", str(PROVIDERS), "--json"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["values"]


def per_second(rate):
    count, per = rate.split("/")
    return int(count) / {"s": 1, "min": 60, "h": 3600}[per]


def test_ip_rule_binds_only_its_ip(tmp_path, sink_factory, sluiced_factory):
    """An `ips:` rule gives 198.51.100.11 one connection and 120/min to
    Google; .10 has the base 3 connections and 10/s. At the sink, .11 never
    has two connections open at once and sends at its own rate (within
    10%) while .10 carries the rest; `sluicectl shaping explain` prints the
    limits that were enforced."""
    sink = sink_factory(rules="* delay 100ms\n")
    rules = tmp_path / "shaping.yaml"
    rules.write_text(IP_RULES)
    sluiced_factory(extra=shaping_extra(rules)).start()
    slow, fast = explain(rules, "198.51.100.11", "gmail.test"), \
        explain(rules, "198.51.100.10", "gmail.test")
    assert slow["max_connections"] == {"value": "1",
                                       "from": "ip 198.51.100.11 provider google"}
    assert slow["message_rate"]["from"] == "ip 198.51.100.11 provider google"
    assert fast["max_connections"]["value"] == "3"
    assert fast["message_rate"] == {"value": "10/s", "from": "provider google"}
    n = 120
    submit([(f"u{i}@gmail.test", None) for i in range(n)])
    got = sink.wait_messages(n, timeout=120)
    conns = wait_until(lambda: sum(c["messages"] for c in sink.connections()) >= n
                       and sink.connections(), 30, "every connection logged")
    peaks = {ip: max_concurrent(cs) for ip, cs in by_src(conns).items()}
    print(f"peak concurrent connections per source IP: {peaks}")
    assert peaks["198.51.100.11"] <= int(slow["max_connections"]["value"])
    assert peaks["198.51.100.10"] <= int(fast["max_connections"]["value"])
    t11 = sorted(m["time"] for m in got if m["src"] == "198.51.100.11")
    t10 = sorted(m["time"] for m in got if m["src"] == "198.51.100.10")
    assert len(t10) > 2 * len(t11), (len(t10), len(t11))
    # The steady window: while .10 still has work, .11 is never short of
    # it; skip its first and last 10% (the burst, the tail).
    steady = [t for t in t11 if t <= t10[-1]]
    lo, hi = len(steady) // 10, len(steady) - 1 - len(steady) // 10
    rate = (hi - lo) / (steady[hi] - steady[lo])
    want = per_second(slow["message_rate"]["value"])
    print(f".11: {len(t11)} messages, {rate:.3f}/s over its messages {lo}..{hi} "
          f"(configured {want}/s); .10: {len(t10)} messages")
    (sink.dir / "rate-ip.txt").write_text(f"{rate:.4f} {want}\n")
    assert abs(rate - want) <= want * 0.10, rate
