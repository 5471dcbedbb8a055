"""Reputation automation wired into the daemon: VERP return paths, the
inbound listener (async DSNs, ARF complaints, relay refusal), suppression at
injection (SMTP and HTTP), receiver response rules in egress, and the
incident replay (one tenant blasting a stale list is held; the others go on)."""
import smtplib
import subprocess

import pytest

from conftest import ROOT, SLUICECTL, message, wait_until

INBOUND = "127.0.0.1:2526"
RP_DOMAIN = "bounces.example.test"
FBL = "fbl@fbl.example.test"


def bounces(tmp_path, rules=None, policy=None, traps=None):
    s = ("bounces:\n"
         f"  return_path_domain: {RP_DOMAIN}\n"
         f"  fbl_address: {FBL}\n"
         f"  bounce_rules: \"{ROOT / 'configs/bounce-rules.conf'}\"\n")
    if rules:
        (tmp_path / "response-rules.conf").write_text(rules)
        s += f"  response_rules: \"{tmp_path / 'response-rules.conf'}\"\n"
    if policy:
        (tmp_path / "policy.yaml").write_text(policy)
        s += f"  policy: \"{tmp_path / 'policy.yaml'}\"\n"
    if traps:
        (tmp_path / "traps.txt").write_text(traps)
        s += f"  spamtraps: \"{tmp_path / 'traps.txt'}\"\n"
    return s


def providers():
    return f"shaping:\n  providers: \"{ROOT / 'configs/providers.conf'}\"\n"


def send(frm, rcpts, port=2525, host="127.0.0.1", body=None):
    with smtplib.SMTP(host, port, timeout=20) as c:
        if body is None:
            _, body = message(frm, rcpts[0])
        return c.sendmail(frm, rcpts, body)


def ctl(d, *args):
    r = subprocess.run([str(SLUICECTL), *args, "--api", d.api_url, "--token", d.admin_token],
                       capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout, r.stderr


def dsn(verp, rcpt, status="5.1.1", diag="550 5.1.1 <{r}>: Recipient address rejected: "
        "User unknown in virtual mailbox table"):
    return (f"From: MAILER-DAEMON@mx.gmail.test\r\nTo: <{verp}>\r\n"
            "Subject: Undelivered Mail Returned to Sender\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: multipart/report; report-type=delivery-status; boundary=\"BB\"\r\n"
            "\r\n--BB\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you...\r\n"
            "--BB\r\nContent-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mx.gmail.test\r\n\r\n"
            f"Final-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: {status}\r\n"
            f"Diagnostic-Code: smtp; {diag.format(r=rcpt)}\r\n"
            "--BB--\r\n")


def arf(verp, rcpt):
    return ("From: feedback@fbl.gmail.test\r\n"
            f"To: {FBL}\r\nSubject: FW: spam report\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/report; report-type=feedback-report; boundary=\"AA\"\r\n"
            "\r\n--AA\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n"
            "--AA\r\nContent-Type: message/feedback-report\r\n\r\n"
            "Feedback-Type: abuse\r\nUser-Agent: test/1.0\r\nVersion: 1\r\n"
            f"Original-Mail-From: <{verp}>\r\nOriginal-Rcpt-To: <{rcpt}>\r\n"
            "Source-IP: 198.51.100.10\r\nArrival-Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
            "\r\n--AA\r\nContent-Type: message/rfc822\r\n\r\n"
            f"From: news@acme.test\r\nTo: {rcpt}\r\nSubject: hi\r\n"
            "Message-ID: <m1@acme.test>\r\n\r\nbody\r\n--AA--\r\n")


def delivered_verp(sink, rcpt):
    got = wait_until(lambda: [m for m in sink.messages() if rcpt in m.get("rcpts", [rcpt])
                              and m["mail_from"].endswith("@" + RP_DOMAIN)], 30,
                     f"a VERP delivery to {rcpt}")
    return got[0]["mail_from"]


def test_verp_round_trip(tmp_path, sink_factory, sluiced_factory):
    sink = sink_factory()
    d = sluiced_factory(api=True, extra=bounces(tmp_path)).start()
    send("news@acme.test", ["u1@gmail.test"])
    sink.wait_messages(1)
    rec = d.wait_events("delivered")[0]
    verp = sink.messages()[0]["mail_from"]
    assert verp.startswith("b+") and verp.endswith("@" + RP_DOMAIN), verp
    rc, out, err = ctl(d, "verp", "decode", verp, "--json")
    assert rc == 0, err
    import json
    j = json.loads(out)
    assert j["tenant"] == "local" and j["id"] == rec["id"] and j["rcpt_index"] == 0
    assert j["stream"] == "transactional" and not j["stale"]
    # A forged token does not decode.
    forged = verp[:5] + ("a" if verp[5] != "a" else "b") + verp[6:]
    rc, out, err = ctl(d, "verp", "decode", forged)
    assert rc != 0
    # The secret was generated into the control store's directory.
    assert (d.control / "verp.secret").stat().st_mode & 0o077 == 0


def test_async_dsn_suppresses_and_injection_refuses(tmp_path, sink_factory, sluiced_factory):
    sink = sink_factory()
    d = sluiced_factory(api=True, extra=bounces(tmp_path), inbound=INBOUND).start()
    send("news@acme.test", ["gone@gmail.test"])
    sink.wait_messages(1)
    verp = sink.messages()[0]["mail_from"]
    host, port = INBOUND.split(":")
    # Relay for anyone else's domain is denied; a forged return path is refused.
    with smtplib.SMTP(host, int(port), timeout=20) as c:
        c.ehlo("mx.gmail.test")
        c.mail("")
        assert c.rcpt("someone@example.test")[0] == 550
        assert c.rcpt("b+aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@" + RP_DOMAIN)[0] == 250
        c.rset()
    with pytest.raises(smtplib.SMTPDataError) as e:
        send("", ["b+aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@" + RP_DOMAIN], host=host, port=int(port),
             body=dsn("b+aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@" + RP_DOMAIN, "x@gmail.test"))
    assert e.value.smtp_code == 550
    # The real DSN: 250 only once processed; event + suppression follow.
    assert send("", [verp], host=host, port=int(port), body=dsn(verp, "gone@gmail.test")) == {}
    ev = d.wait_events("async_bounce")[0]
    assert ev["tenant"] == "local" and ev["rcpt"] == "gone@gmail.test"
    assert "userunknown" in ev["response"]
    st, r = d.api("GET", "/v1/suppressions?tenant=local")
    assert st == 200, r
    assert [(i["address"], i["reason"]) for i in r["items"]] == [("gone@gmail.test",
                                                                  "hard_bounce")]
    # SMTP injection refuses the suppressed recipient, takes the others.
    with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
        send("news@acme.test", ["gone@gmail.test"])
    code, text = e.value.recipients["gone@gmail.test"]
    assert code == 550 and b"recipient suppressed (hard_bounce)" in text
    assert send("news@acme.test", ["GONE@gmail.test", "ok@gmail.test"]) == {
        "GONE@gmail.test": (550, b"5.7.1 recipient suppressed (hard_bounce)")}
    # HTTP injection: a per-recipient rejection.
    st, r = d.api("POST", "/v1/messages?tenant=local", {"messages": [
        {"from": "news@acme.test", "to": ["gone@gmail.test", "ok2@gmail.test"], "text": "x"}]})
    assert st == 200, r
    rcpts = r["messages"][0]["recipients"]
    assert rcpts[0] == {"rcpt": "gone@gmail.test", "status": "rejected",
                        "reason": "recipient suppressed (hard_bounce)"}
    assert rcpts[1]["status"] == "accepted"
    assert len(d.wait_events("suppressed", 3)) >= 3
    assert "sluice_suppression_hits_total 3" in d.metrics()
    # sluicectl: list, export, remove, import.
    rc, out, _ = ctl(d, "suppress", "list", "--tenant", "local")
    assert rc == 0 and "gone@gmail.test" in out and "hard_bounce" in out
    rc, out, _ = ctl(d, "suppress", "export", "--tenant", "local")
    assert rc == 0 and "local,gone@gmail.test,hard_bounce," in out
    rc, out, err = ctl(d, "suppress", "remove", "gone@gmail.test", "--tenant", "local")
    assert rc == 0, err
    csv = tmp_path / "in.csv"
    csv.write_text("tenant,address,reason,added_at_ms\nlocal,a@x.test,unsubscribe,1\nb@x.test\n")
    rc, out, err = ctl(d, "suppress", "import", str(csv), "--tenant", "local")
    assert rc == 0 and "2 entries, 2 new" in out, (out, err)
    rc, out, _ = ctl(d, "suppress", "add", "trap@x.test")  # global
    assert rc == 0
    st, r = d.api("GET", "/v1/suppressions")
    assert {(i["tenant"], i["address"]) for i in r["items"]} == {
        ("*", "trap@x.test"), ("local", "a@x.test"), ("local", "b@x.test")}
    send("news@acme.test", ["gone@gmail.test"])  # removed: accepted again


def test_arf_complaint(tmp_path, sink_factory, sluiced_factory):
    sink = sink_factory()
    d = sluiced_factory(api=True, extra=bounces(tmp_path), inbound=INBOUND).start()
    send("news@acme.test", ["angry@yahoo.test"])
    sink.wait_messages(1)
    verp = sink.messages()[0]["mail_from"]
    host, port = INBOUND.split(":")
    assert send("feedback@fbl.gmail.test", [FBL], host=host, port=int(port),
                body=arf(verp, "angry@yahoo.test")) == {}
    ev = d.wait_events("complaint")[0]
    assert ev["tenant"] == "local" and ev["rcpt"] == "angry@yahoo.test"
    assert "abuse" in ev["response"]
    st, r = d.api("GET", "/v1/suppressions?tenant=local")
    assert [(i["address"], i["reason"]) for i in r["items"]] == [("angry@yahoo.test",
                                                                  "complaint")]
    rc, out, err = ctl(d, "reputation", "local")
    assert rc == 0 and "complaints=1" in out, (out, err)
    assert "set acme.test/transactional: policy ok" in out, out
    # Mail to the verification prefix without a verifier: a clear refusal.
    with pytest.raises(smtplib.SMTPDataError) as e:
        send("x@acme.test", ["verify+abc@" + RP_DOMAIN], host=host, port=int(port))
    assert e.value.smtp_code == 550 and b"verification not configured" in e.value.smtp_error


RULES = ("google code=421 status=4.7.28 action=suspend duration=1h name=test-google-4.7.28\n")


def test_response_rule_suspends_ip_provider(tmp_path, sink_factory, sluiced_factory):
    sink = sink_factory(rules="gmail.test reject-rcpt 421 4.7.28 Our system has detected an "
                              "unusual rate of unsolicited mail, rate limited\n")
    d = sluiced_factory(api=True, extra=bounces(tmp_path, rules=RULES) + providers()).start()
    for i in range(4):
        send("news@acme.test", [f"g{i}@gmail.test"])
        send("news@acme.test", [f"y{i}@yahoo.test"])
    ev = d.wait_events("response_rule")
    assert ev[0]["tenant"] == "local" and "test-google-4.7.28" in ev[0]["response"]
    # Yahoo keeps going; Gmail waits (deferred, never bounced).
    wait_until(lambda: len([m for m in sink.messages()]) >= 4, 30, "yahoo deliveries")
    assert all("yahoo.test" in r for m in sink.messages() for r in m.get("rcpts", []))
    wait_until(lambda: len(d.events("response_rule")) >= 2, 30, "both IPs suspended")
    n = len(d.events("deferred"))
    import time
    time.sleep(3)  # retries would come every 1-2 s: none go out while suspended
    assert len(d.events("deferred")) == n
    assert not d.events("bounced")
    # Both source IPs are suspended (sessions opened at once may each see a 421).
    assert {e["response"].split()[6] for e in d.events("response_rule")} == {
        "198.51.100.10", "198.51.100.11"}
    fired = [l for l in d.metrics().splitlines()
             if l.startswith('sluice_response_rule_firings_total{rule="test-google-4.7.28"}')]
    assert int(fired[0].split()[-1]) >= 2


POLICY = """\
bounce_warn: 5%
bounce_hold: 10%
bounce_min_sent: 20
unknown_user_warn: 3%
unknown_user_hold: 8%
unknown_user_min_sent: 20
complaint_min_delivered: 20
trap_hold: 0
tenant_trap_hold: 3
"""


def test_incident_replay(tmp_path, sink_factory, sluiced_factory):
    """Three tenants on one pool; 'blaster' mails a stale list (30% unknown
    users, a few traps); it is held within a bounded number of messages while
    the other two deliver everything."""
    bad = [f"s{i}x" for i in range(0, 300, 3)]  # every third recipient is unknown
    sink = sink_factory(rules="example.test reject-user " + " ".join(bad) + "\n")
    traps = "trap1@example.test\ntrap2@example.test\n@traps.example.test\n"
    d = sluiced_factory(api=True, tenants=[{"name": "good1"}, {"name": "good2"},
                                           {"name": "blaster"}], inbound=INBOUND,
                        extra=bounces(tmp_path, policy=POLICY, traps=traps)).start()
    for t in ("good1", "good2", "blaster"):
        d.api("POST", f"/v1/tenants/{t}/approve", {"reason": "test"})

    def inject(tenant, rcpts, frm):
        st, r = d.api("POST", f"/v1/messages?tenant={tenant}", {"messages": [
            {"from": frm, "to": [x], "text": "hello"} for x in rcpts]})
        assert st == 200, r
        return r

    blast = [f"s{i}x@example.test" for i in range(300)]
    blast[50:50] = ["trap1@example.test", "trap2@example.test", "x@traps.example.test"]
    for k in range(0, len(blast), 50):
        inject("blaster", blast[k:k + 50], "promo@blaster.test")
        inject("good1", [f"a{k + j}@gmail.test" for j in range(10)], "news@good1.test")
        inject("good2", [f"b{k + j}@yahoo.test" for j in range(10)], "news@good2.test")
    # A complaint burst: the first ten of blaster's delivered messages are
    # reported through the feedback loop.
    host, port = INBOUND.split(":")
    got = wait_until(lambda: [m for m in sink.messages() if m["rcpts"][0].startswith("s")
                              and m["mail_from"].endswith("@" + RP_DOMAIN)][:10]
                     if len([m for m in sink.messages()
                             if m["rcpts"][0].startswith("s")]) >= 10 else None,
                     30, "ten blaster deliveries")
    for m in got:
        send("feedback@fbl.gmail.test", [FBL], host=host, port=int(port),
             body=arf(m["mail_from"], m["rcpts"][0]))
    wait_until(lambda: d.api("GET", "/v1/tenants/blaster")[1]["state"] == "on_hold", 60,
               "blaster held")
    goods = 2 * 10 * len(range(0, len(blast), 50))
    wait_until(lambda: len([e for e in d.events("delivered")
                            if e["tenant"] in ("good1", "good2")]) >= goods, 90,
               "every good message delivered")
    sent = [e for e in d.events() if e.get("tenant") == "blaster" and
            e.get("event") in ("delivered", "bounced")]
    assert len(sent) < len(blast) * 0.6, len(sent)  # held well before the end
    st, r = d.api("GET", "/v1/audit?tenant=blaster")
    holds = [a for a in r["items"] if a["actor"] == "policy"]
    assert holds and "policy_hold" in holds[0]["reason"], r
    st, rep = d.api("GET", "/v1/reputation/blaster")
    assert st == 200 and rep["state"] == "on_hold" and rep["counts"]["unknown_user"] > 0
    assert [(x["domain"], x["policy_state"]) for x in rep["sets"]] == [("blaster.test", "held")]
    assert d.api("GET", "/v1/tenants/good1")[1]["state"] == "active"
    assert len(d.wait_events("complaint", 10)) == 10 and rep["counts"]["complaints"] == 10
    st, r = d.api("GET", "/v1/suppressions?tenant=blaster")
    assert len([i for i in r["items"] if i["reason"] == "complaint"]) == 10
    m = d.metrics()
    traps = [l for l in m.splitlines() if l.startswith("sluice_spamtrap_hits_total")]
    assert not traps or int(traps[0].split()[-1]) <= 3  # the pool's trap hits stay bounded
    assert 'sluice_policy_actions_total{action="policy_hold"}' in d.metrics()


def test_spam_trap_hit_holds_at_once(tmp_path, sink_factory, sluiced_factory):
    """The default policy: one trap hit holds the configuration set (not the
    whole tenant), with no volume guard."""
    sink = sink_factory()
    d = sluiced_factory(api=True, tenants=[{"name": "t1"}],
                        extra=bounces(tmp_path, traps="# traps\nspamtrap@example.test\n")).start()
    d.api("POST", "/v1/tenants/t1/approve", {"reason": "test"})
    st, r = d.api("POST", "/v1/messages?tenant=t1", {"messages": [
        {"from": "news@t1.test", "to": ["fine@gmail.test"], "text": "x"},
        {"from": "news@t1.test", "to": ["SpamTrap@example.test"], "text": "x"}]})
    assert st == 200, r
    wait_until(lambda: d.api("GET", "/v1/tenants/t1/cfgsets/t1.test/transactional")[1]
               .get("paused"), 30, "t1.test/transactional held")
    assert d.api("GET", "/v1/tenants/t1")[1]["state"] == "active"
    st, r = d.api("GET", "/v1/audit?tenant=t1")
    hold = [a for a in r["items"] if a["actor"] == "policy"][0]
    assert hold["action"] == "cfgset.hold" and "spam_trap" in hold["reason"], hold
    st, rep = d.api("GET", "/v1/reputation/t1")
    assert rep["counts"]["trap_hits"] == 1
    assert any(x["action"] == "trap_hit" for x in rep["recent"])
    assert "sluice_spamtrap_hits_total 1" in d.metrics()
    sink.wait_messages(2)
    # An operator resumes the set; the engine judges afresh, and a second
    # hit within the repeat window disables the tenant.
    st, r = d.api("POST", "/v1/tenants/t1/cfgsets/t1.test/transactional/resume",
                  {"reason": "list cleaned"})
    assert st == 200 and not r["paused"], r
    st, r = d.api("POST", "/v1/messages?tenant=t1", {"messages": [
        {"from": "news@t1.test", "to": ["spamtrap@example.test"], "text": "again"}]})
    assert st == 200, r
    wait_until(lambda: d.api("GET", "/v1/tenants/t1")[1]["state"] == "disabled", 30,
               "t1 disabled")


def test_response_rule_suspends_tenant(tmp_path, sink_factory, sluiced_factory):
    """scope=tenant: the tenant's later mail to that provider waits (a local
    deferral, no attempt, no bounce)."""
    sink_factory(rules="gmail.test reject-rcpt 550 5.7.26 This mail is unauthenticated\n")
    rules = ("google code=550 status=5.7.26 action=suspend duration=1h scope=tenant "
             "name=test-google-auth\n")
    d = sluiced_factory(api=True, extra=bounces(tmp_path, rules=rules) + providers()).start()
    send("news@acme.test", ["a@gmail.test"])
    ev = d.wait_events("response_rule")[0]
    assert ev["tenant"] == "local" and "suspend tenant local" in ev["response"]
    assert d.wait_events("bounced")[0]["rcpt"] == "a@gmail.test"
    send("news@acme.test", ["b@gmail.test"])
    ev = d.wait_events("deferred")[0]
    assert ev["rcpt"] == "b@gmail.test" and "suspended towards google" in ev["response"]
    assert len(d.events("bounced")) == 1
