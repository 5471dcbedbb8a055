"""Reputation automation end to end: a tenant's volume spike against its own
baseline holds it for review; a configuration set's hold pauses that set
only; a receiver's "slow down" reply throttles the (source IP, provider)
rate and the rate ramps back. Small policy buckets and ramp steps keep each
test to seconds; the assertions are about order and ratios, never about
exact timings."""
import collections
import re
import subprocess
import time
from datetime import datetime

from conftest import ROOT, SLUICECTL, wait_until
from test_reputation import bounces


def ctl(d, *args):
    r = subprocess.run([str(SLUICECTL), *args, "--api", d.api_url, "--token", d.admin_token],
                       capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout, r.stderr


def rcpt_counts(sink):
    return collections.Counter(r for m in sink.messages() for r in m.get("rcpts", []))


def held(d):
    line = [l for l in d.metrics().splitlines() if l.startswith("sluice_queue_held ")]
    return int(line[0].split()[-1]) if line else 0


def injector(d):
    sent = collections.defaultdict(list)

    def inject(tenant, frm, rcpts):
        st, r = d.api("POST", f"/v1/messages?tenant={tenant}", {"messages": [
            {"from": frm, "to": [x], "text": "hello"} for x in rcpts]})
        assert st == 200, r
        assert all(x["status"] == "accepted" for m in r["messages"] for x in m["recipients"]), r
        sent[tenant] += rcpts
    return inject, sent


# One-second buckets: a spike is more than 5x the median of the tenant's
# non-empty seconds (at least 3 of them) and at least 20 messages. The rate
# rules are out of the way.
SPIKE_POLICY = """\
bucket: 1s
window: 10s
spike_factor: 5
spike_floor: 20
spike_min_buckets: 3
spike_baseline: 60s
bounce_min_sent: 100000
unknown_user_min_sent: 100000
complaint_min_delivered: 100000
trap_hold: 0
tenant_trap_hold: 0
"""


def test_volume_spike_holds_tenant(tmp_path, sink_factory, sluiced_factory):
    sink = sink_factory()
    d = sluiced_factory(api=True, tenants=[{"name": "steady"}, {"name": "burst"}],
                        extra=bounces(tmp_path, policy=SPIKE_POLICY)).start()
    for t in ("steady", "burst"):
        d.api("POST", f"/v1/tenants/{t}/approve", {"reason": "test"})
    inject, sent = injector(d)
    # The baseline: two messages a second each, for six seconds.
    for i in range(6):
        inject("steady", "news@steady.test", [f"s{i}-{j}@gmail.test" for j in range(2)])
        inject("burst", "news@burst.test", [f"b{i}-{j}@gmail.test" for j in range(2)])
        time.sleep(1)
    assert d.api("GET", "/v1/tenants/burst")[1]["state"] == "active"
    # Forty times its usual second.
    inject("burst", "promo@burst.test", [f"blast{j}@gmail.test" for j in range(80)])
    wait_until(lambda: d.api("GET", "/v1/tenants/burst")[1]["state"] == "on_hold", 20,
               "burst held")
    # Audited with the numbers: this bucket's count, the factor, the median.
    st, r = d.api("GET", "/v1/audit?tenant=burst")
    holds = [a for a in r["items"] if a["actor"] == "policy"]
    assert len(holds) == 1 and "volume spike" in holds[0]["reason"], r
    m = re.search(r"tenant burst: policy_hold: volume spike: (\d+) accepted this bucket > "
                  r"5 x median ([\d.]+)", holds[0]["reason"])
    assert m, holds[0]
    assert int(m.group(1)) >= 20 and int(m.group(1)) > 5 * float(m.group(2)), holds[0]
    ev = [e for e in d.wait_events("policy") if e["tenant"] == "burst"]
    assert ev and "volume spike" in ev[0]["response"]
    assert 'sluice_volume_spike_holds_total{tenant="burst"} 1' in d.metrics()
    assert "policy: tenant burst: policy_hold: volume spike" in (d.dir / "sluiced.err").read_text()
    st, rep = d.api("GET", "/v1/reputation/burst")
    assert rep["state"] == "on_hold" and rep["policy_state"] == "held"
    assert any("volume spike" in x["text"] for x in rep["recent"])
    # Held for review: new mail is accepted and kept; the other tenant goes on.
    inject("burst", "news@burst.test", [f"late{j}@gmail.test" for j in range(5)])
    inject("steady", "news@steady.test", [f"after{j}@gmail.test" for j in range(5)])
    wait_until(lambda: all(rcpt_counts(sink)[x] for x in sent["steady"]), 30,
               "every steady message delivered")
    wait_until(lambda: held(d) == sum(1 for x in sent["burst"] if not rcpt_counts(sink)[x]),
               30, "every undelivered burst message kept")
    assert held(d) >= 5
    assert not any(rcpt_counts(sink)[f"late{j}@gmail.test"] for j in range(5))
    assert d.api("GET", "/v1/tenants/steady")[1]["state"] == "active"
    # The operator releases it: everything kept goes, exactly once.
    st, r = d.api("POST", "/v1/tenants/burst/resume", {"reason": "campaign reviewed"})
    assert st == 200, r
    wait_until(lambda: all(rcpt_counts(sink)[x] for x in sent["burst"]), 30,
               "every burst message delivered")
    c = rcpt_counts(sink)
    assert all(c[x] == 1 for t in sent for x in sent[t]), c
    assert d.api("GET", "/v1/tenants/burst")[1]["state"] == "active"


def test_cfgset_hold_keeps_other_sets_delivering(tmp_path, sink_factory, sluiced_factory):
    """A trap hit holds the configuration set multi.test/transactional; the
    tenant's other set (other.test) keeps delivering; the held set's mail
    is kept and goes once an operator resumes it with sluicectl."""
    sink = sink_factory()
    d = sluiced_factory(api=True, tenants=[{"name": "multi"}],
                        extra=bounces(tmp_path, traps="trap@example.test\n")).start()
    d.api("POST", "/v1/tenants/multi/approve", {"reason": "test"})
    inject, sent = injector(d)
    inject("multi", "news@multi.test", ["a0@gmail.test", "trap@example.test"])
    inject("multi", "news@other.test", ["b0@gmail.test"])
    wait_until(lambda: d.api("GET", "/v1/tenants/multi/cfgsets/multi.test/transactional")[1]
               .get("paused"), 30, "multi.test/transactional held")
    assert d.api("GET", "/v1/tenants/multi")[1]["state"] == "active"
    inject("multi", "news@multi.test", [f"a{j}@gmail.test" for j in range(1, 5)])
    inject("multi", "news@other.test", [f"b{j}@gmail.test" for j in range(1, 5)])
    wait_until(lambda: all(rcpt_counts(sink)[f"b{j}@gmail.test"] for j in range(5)), 30,
               "other.test delivers")
    wait_until(lambda: held(d) == 4, 30, "multi.test's mail kept")
    assert not any(rcpt_counts(sink)[f"a{j}@gmail.test"] for j in range(1, 5))
    # Visible per set: the API and sluicectl.
    st, rep = d.api("GET", "/v1/reputation/multi")
    sets = {(x["domain"], x["stream"]): x for x in rep["sets"]}
    assert sets[("multi.test", "transactional")]["policy_state"] == "held"
    assert sets[("multi.test", "transactional")]["paused"] is True
    assert sets[("other.test", "transactional")]["policy_state"] == "ok"
    assert sets[("other.test", "transactional")]["paused"] is False
    rc, out, err = ctl(d, "reputation", "multi")
    assert rc == 0, err
    assert "set multi.test/transactional: policy held, paused" in out, out
    assert "set other.test/transactional: policy ok\n" in out, out
    st, r = d.api("GET", "/v1/audit?tenant=multi")
    holds = [a for a in r["items"] if a["action"] == "cfgset.hold"]
    assert len(holds) == 1 and holds[0]["actor"] == "policy", r
    assert "configuration set multi/multi.test/transactional" in holds[0]["reason"], holds
    # The hold is in the store: a restart keeps the set's mail waiting.
    assert d.stop() == 0
    d.start()
    st, rep = d.api("GET", "/v1/reputation/multi")
    assert [(x["domain"], x["paused"]) for x in rep["sets"]] == [("multi.test", True)], rep
    inject("multi", "news@other.test", ["b5@gmail.test"])
    wait_until(lambda: rcpt_counts(sink)["b5@gmail.test"], 30, "other.test after the restart")
    wait_until(lambda: held(d) == 4, 30, "multi.test's mail still kept")
    assert not any(rcpt_counts(sink)[f"a{j}@gmail.test"] for j in range(1, 5))
    # The operator resumes the set: its kept mail goes, exactly once.
    rc, out, err = ctl(d, "reputation", "resume", "multi", "multi.test", "transactional",
                       "--reason", "trap address removed from the list")
    assert rc == 0 and "resumed" in out, (out, err)
    wait_until(lambda: all(rcpt_counts(sink)[f"a{j}@gmail.test"] for j in range(5)), 30,
               "multi.test delivers again")
    c = rcpt_counts(sink)
    assert all(c[x] == 1 for x in sent["multi"]), c
    st, r = d.api("GET", "/v1/audit?tenant=multi")
    res = [a for a in r["items"] if a["action"] == "cfgset.resume"]
    assert res and res[0]["reason"] == "trap address removed from the list", r
    st, rep = d.api("GET", "/v1/reputation/multi")
    sets = {(x["domain"], x["stream"]): x for x in rep["sets"]}
    assert sets[("multi.test", "transactional")]["policy_state"] == "ok"
    assert sets[("multi.test", "transactional")]["paused"] is False


def shipped_rule(name):
    for line in (ROOT / "configs/response-rules.conf").read_text().splitlines():
        if line.split() and line.split()[-1] == f"name={name}":
            return line
    raise AssertionError(f"no shipped rule {name}")


def epoch(iso):
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_response_rule_throttle_ramps_back(tmp_path, sink_factory, sluiced_factory):
    """Google's 421-4.7.28 (the shipped rule, with a ramp of seconds instead
    of minutes) halves the (source IP, google) message rate, which then
    climbs back; nothing is lost or sent twice."""
    rule = shipped_rule("google-4.7.28").replace("step=0.1 every=10m", "step=0.25 every=2s")
    assert "action=throttle factor=0.5 step=0.25 every=2s" in rule, rule
    # googlehosted.test shares Google's MX hosts (one site with gmail.test):
    # its one message is the probe that draws the 421.
    sink = sink_factory(rules="googlehosted.test reject-rcpt 421 4.7.28 Our system has detected "
                              "an unusual rate of unsolicited mail originating from your IP "
                              "address. Mail sent from your IP address has been temporarily "
                              "rate limited.\n")
    shaping = tmp_path / "shaping.yaml"
    shaping.write_text("providers:\n  google:\n    message_rate: 10/s\n"
                       "domains:\n  googlehosted.test:\n    retry_schedule: [1h]\n")
    extra = bounces(tmp_path, rules=rule + "\n") + (
        f"shaping:\n  rules: \"{shaping}\"\n"
        f"  providers: \"{ROOT / 'configs/providers.conf'}\"\n")
    d = sluiced_factory(api=True, tenants=[{"name": "bulk"}], extra=extra).start()
    d.api("POST", "/v1/tenants/bulk/approve", {"reason": "test"})
    inject, sent = injector(d)
    for k in range(0, 400, 50):
        inject("bulk", "news@bulk.test", [f"u{k + j}@gmail.test" for j in range(50)])
    wait_until(lambda: len(sink.messages()) >= 60, 60, "the flow under way")
    st, r = d.api("POST", "/v1/messages?tenant=bulk", {"messages": [
        {"from": "news@bulk.test", "to": ["probe@googlehosted.test"], "text": "probe"}]})
    assert st == 200, r
    ev = d.wait_events("response_rule")[0]
    assert "rule google-4.7.28" in ev["response"] and "throttle ip" in ev["response"], ev
    ip = ev["response"].split()[6]
    t = epoch(ev["time"])
    wait_until(lambda: sum(1 for x in sent["bulk"] if rcpt_counts(sink)[x]) == 400, 120,
               "every message delivered")
    c = rcpt_counts(sink)
    assert all(c[x] == 1 for x in sent["bulk"]), [x for x in sent["bulk"] if c[x] != 1]
    times = sorted(m["time"] for m in sink.messages()
                   if m["src"] == ip and m["rcpts"][0].endswith("@gmail.test"))

    def rate(a, b):
        return sum(1 for x in times if t + a <= x < t + b) / (b - a)

    before, after, later = rate(-2, 0), rate(0.25, 2), rate(4.5, 6.5)
    print(f"throttled {ip}: {before:.1f}/s before, {after:.1f}/s after, {later:.1f}/s later")
    # 10/s before; factor 0.5 for 2 s, 0.75 for 2 s, then 1 again.
    assert before >= 4, (before, after, later)
    assert after <= 0.8 * before, (before, after, later)
    assert later >= 1.25 * after, (before, after, later)
    fired = [l for l in d.metrics().splitlines()
             if l.startswith('sluice_response_rule_firings_total{rule="google-4.7.28"}')]
    assert fired and int(fired[0].split()[-1]) >= 1


GRACE_POLICY = """\
bounce_warn: 0
bounce_hold: 20%
bounce_min_sent: 10
unknown_user_warn: 0
unknown_user_hold: 20%
unknown_user_min_sent: 10
trap_hold: 0
tenant_trap_hold: 0
grace: 2s
"""


def test_cfgset_grace_expiry_disables_tenant(tmp_path, sink_factory, sluiced_factory):
    """A set held for its bounce rate whose numbers are still bad when its
    grace ends escalates to the tenant: disabled (the tenant's own rate,
    diluted by a clean set, never crossed a threshold)."""
    sink = sink_factory(rules="example.test reject-user " +
                              " ".join(f"gone{j}" for j in range(5)) + "\n")
    d = sluiced_factory(api=True, tenants=[{"name": "esc"}],
                        extra=bounces(tmp_path, policy=GRACE_POLICY)).start()
    d.api("POST", "/v1/tenants/esc/approve", {"reason": "test"})
    inject, sent = injector(d)
    inject("esc", "news@clean.test", [f"c{j}@gmail.test" for j in range(90)])
    wait_until(lambda: len(sink.messages()) >= 90, 60, "the clean set delivered")
    inject("esc", "news@stale.test", [f"gone{j}@example.test" for j in range(5)] +
           [f"here{j}@example.test" for j in range(5)])
    wait_until(lambda: d.api("GET", "/v1/tenants/esc/cfgsets/stale.test/transactional")[1]
               .get("paused"), 30, "stale.test held")
    wait_until(lambda: d.api("GET", "/v1/tenants/esc")[1]["state"] == "disabled", 30,
               "esc disabled after the grace period")
    st, r = d.api("GET", "/v1/audit?tenant=esc")
    pol = [(a["action"], a["reason"]) for a in r["items"] if a["actor"] == "policy"]
    assert pol[0][0] == "cfgset.hold" and "_rate" in pol[0][1], pol
    assert pol[-1][0] == "tenant.state" and "grace_expired" in pol[-1][1], pol
    assert "configuration set esc/stale.test/transactional" in pol[-1][1], pol
