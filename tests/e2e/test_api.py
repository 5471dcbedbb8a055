"""The admin HTTP API against a running sluiced: tenant lifecycle and its
effect on SMTP injection and delivery, tenant isolation, request
validation, the audit log, grace expiry and sluicectl over the API."""
import json
import os
import smtplib
import ssl
import subprocess

import pytest

from conftest import SLUICECTL, message, wait_until


def client_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@pytest.fixture
def api_daemon(sink_factory, sluiced_factory, certs):
    sink = sink_factory()
    d = sluiced_factory(tls=certs, api=True).start()
    return sink, d


def smtp_auth_send(user, password, frm, rcpt, msg):
    """AUTH as user and send; returns sendmail's result or raises."""
    with smtplib.SMTP("127.0.0.1", 2525, timeout=10) as c:
        c.ehlo("client.test")
        c.starttls(context=client_ctx())
        c.ehlo("client.test")
        c.login(user, password)
        return c.sendmail(frm, [rcpt], msg)


def relay_send(frm, rcpt, msg):
    """Send as the relay tenant "local" (no AUTH, from 127.0.0.0/8)."""
    with smtplib.SMTP("127.0.0.1", 2525, timeout=10) as c:
        c.ehlo("client.test")
        return c.sendmail(frm, [rcpt], msg)


def new_tenant(d, name, user=None, password="pw-" + "x" * 8):
    st, t = d.api("POST", "/v1/tenants", {"name": name, "reason": "signup"})
    assert st == 201, t
    if user:
        st, u = d.api("POST", f"/v1/tenants/{name}/users", {"username": user,
                                                           "password": password})
        assert st == 201, u
    return t


def test_lifecycle_controls_injection_and_delivery(api_daemon):
    sink, d = api_daemon
    t = new_tenant(d, "beta", user="beta-smtp", password="beta-secret")
    assert t["state"] == "pending_review"

    # pending_review: AUTH works, MAIL FROM is refused with the review text.
    mid, msg = message("news@beta.test", "u@gmail.test")
    with pytest.raises(smtplib.SMTPSenderRefused) as e:
        smtp_auth_send("beta-smtp", "beta-secret", "news@beta.test", "u@gmail.test", msg)
    assert e.value.smtp_code == 550
    assert b"5.7.1" in e.value.smtp_error and b"review" in e.value.smtp_error.lower()

    # approve: accepted and delivered.
    st, t = d.api("POST", "/v1/tenants/beta/approve", {"reason": "looks fine"})
    assert st == 200 and t["state"] == "active"
    assert smtp_auth_send("beta-smtp", "beta-secret", "news@beta.test", "u@gmail.test",
                          msg) == {}
    got = sink.wait_messages(1)
    assert got[0]["message_id"] == mid
    ev = d.wait_events("delivered", 1)[0]
    assert ev["tenant"] == "beta"

    # hold: accepted but kept. Mail of another tenant sent afterwards is
    # delivered while beta's is not.
    st, t = d.api("POST", "/v1/tenants/beta/hold", {"reason": "complaints"})
    assert st == 200 and t["state"] == "on_hold" and t["hold_until"] is None
    held_id, held = message("news@beta.test", "v@gmail.test")
    assert smtp_auth_send("beta-smtp", "beta-secret", "news@beta.test", "v@gmail.test",
                          held) == {}
    other_id, other = message("a@local.test", "w@gmail.test")
    assert relay_send("a@local.test", "w@gmail.test", other) == {}
    got = sink.wait_messages(2)
    ids = [m["message_id"] for m in got]
    assert other_id in ids and held_id not in ids

    # resume: the held message goes.
    st, t = d.api("POST", "/v1/tenants/beta/resume", {})
    assert st == 200 and t["state"] == "active"
    got = sink.wait_messages(3)
    assert held_id in [m["message_id"] for m in got]

    # disable: refused at MAIL FROM.
    st, t = d.api("POST", "/v1/tenants/beta/disable", {"reason": "abuse"})
    assert st == 200 and t["state"] == "disabled"
    with pytest.raises(smtplib.SMTPSenderRefused) as e:
        smtp_auth_send("beta-smtp", "beta-secret", "news@beta.test", "u@gmail.test", msg)
    assert e.value.smtp_code == 550

    # removed SMTP user: AUTH fails.
    st, _ = d.api("DELETE", "/v1/tenants/beta/users/beta-smtp")
    assert st == 204
    with pytest.raises(smtplib.SMTPAuthenticationError):
        smtp_auth_send("beta-smtp", "beta-secret", "news@beta.test", "u@gmail.test", msg)


def test_held_mail_survives_restart(api_daemon, sluiced_factory):
    sink, d = api_daemon
    new_tenant(d, "gamma", user="gamma", password="gamma-secret")
    assert d.api("POST", "/v1/tenants/gamma/approve")[0] == 200
    assert d.api("POST", "/v1/tenants/gamma/hold")[0] == 200
    mid, msg = message("x@gamma.test", "r@yahoo.test")
    assert smtp_auth_send("gamma", "gamma-secret", "x@gamma.test", "r@yahoo.test", msg) == {}
    assert d.stop() == 0
    d.start()
    other_id, other = message("a@local.test", "w@yahoo.test")
    assert relay_send("a@local.test", "w@yahoo.test", other) == {}
    got = sink.wait_messages(1)
    assert [m["message_id"] for m in got] == [other_id]
    assert d.api("POST", "/v1/tenants/gamma/resume")[0] == 200
    got = sink.wait_messages(2)
    assert mid in [m["message_id"] for m in got]


def test_config_tenants_are_seeded_active(api_daemon):
    _, d = api_daemon
    st, t = d.api("GET", "/v1/tenants/local")
    assert st == 200 and t["state"] == "active"
    st, page = d.api("GET", "/v1/audit?tenant=local")
    assert st == 200
    assert [(e["actor"], e["action"]) for e in page["items"]][:2] == [
        ("config", "tenant.create"), ("config", "tenant.state")]


def test_tenant_isolation(api_daemon):
    _, d = api_daemon
    new_tenant(d, "ta")
    new_tenant(d, "tb")
    st, tok = d.api("POST", "/v1/tokens", {"role": "tenant", "tenant": "ta"})
    assert st == 201 and tok["token"].startswith("slk_")
    a = tok["token"]
    st, tokb = d.api("POST", "/v1/tokens", {"role": "tenant", "tenant": "tb"})
    assert st == 201

    assert d.api("GET", "/v1/tenants/ta", token=a)[0] == 200
    st, err = d.api("GET", "/v1/tenants/tb", token=a)
    assert st == 404 and err["error"]["code"] == "not_found"
    assert d.api("GET", "/v1/tenants/nosuch", token=a)[0] == 404
    st, lst = d.api("GET", "/v1/tenants", token=a)
    assert st == 200 and [t["name"] for t in lst["items"]] == ["ta"]
    # operator-only actions: 403 whatever the tenant
    for path in ("/v1/tenants/ta/approve", "/v1/tenants/tb/approve", "/v1/tenants/tb/hold"):
        st, err = d.api("POST", path, {}, token=a)
        assert st == 403 and err["error"]["code"] == "forbidden", path
    assert d.api("POST", "/v1/tenants", {"name": "tc"}, token=a)[0] == 403
    assert d.api("POST", "/v1/tenants/tb/users", {"username": "x", "password": "y"},
                 token=a)[0] == 403
    # tokens and audit: only its own
    st, toks = d.api("GET", "/v1/tokens", token=a)
    assert st == 200 and {t["tenant"] for t in toks["items"]} == {"ta"}
    assert d.api("GET", "/v1/tokens?tenant=tb", token=a)[0] == 404
    assert d.api("DELETE", f"/v1/tokens/{tokb['id']}", token=a)[0] == 404
    assert d.api("POST", "/v1/tokens", {"role": "tenant", "tenant": "tb"}, token=a)[0] == 404
    assert d.api("POST", "/v1/tokens", {"role": "operator"}, token=a)[0] == 403
    st, aud = d.api("GET", "/v1/audit", token=a)
    assert st == 200 and aud["items"]
    assert {e["target"] for e in aud["items"]} == {"tenant:ta"}
    assert d.api("GET", "/v1/audit?tenant=tb", token=a)[0] == 404
    # B's token still works; revoking A's own token works and ends it
    assert d.api("GET", "/v1/tenants/tb", token=tokb["token"])[0] == 200
    assert d.api("DELETE", f"/v1/tokens/{tok['id']}", token=a)[0] == 204
    assert d.api("GET", "/v1/tenants/ta", token=a)[0] == 401


def test_bad_requests_get_clear_errors(api_daemon):
    _, d = api_daemon

    def err(st, body, status, code, words=()):
        assert st == status, body
        assert body["error"]["code"] == code
        for w in words:
            assert w in body["error"]["message"], body

    st, b = d.api("POST", "/v1/tenants", raw=b'{"name": "x",')
    err(st, b, 400, "bad_request", ["invalid JSON"])
    st, b = d.api("POST", "/v1/tenants", raw=b'[1, 2]')
    err(st, b, 400, "bad_request", ["object"])
    st, b = d.api("POST", "/v1/tenants", {"name": "x", "quota_day": "lots"})
    err(st, b, 400, "bad_request", ["quota_day", "integer"])
    st, b = d.api("POST", "/v1/tenants", {"name": "x", "quota_day": -1})
    err(st, b, 400, "bad_request", ["quota_day"])
    st, b = d.api("POST", "/v1/tenants", {"name": 7})
    err(st, b, 400, "bad_request", ["name"])
    st, b = d.api("POST", "/v1/tenants", {"name": "x", "colour": "blue"})
    err(st, b, 400, "bad_request", ["unknown field", "colour"])
    st, b = d.api("POST", "/v1/tenants", {})
    err(st, b, 400, "bad_request", ["missing field", "name"])
    st, b = d.api("POST", "/v1/tenants", raw=b'{"name": "x", "name": "y"}')
    err(st, b, 400, "bad_request", ["duplicate"])
    st, b = d.api("POST", "/v1/tenants", {"name": "bad name!"})
    err(st, b, 400, "bad_request", ["names"])
    st, b = d.api("POST", "/v1/tenants", {"name": "x", "streams": {"bulk": {}}})
    err(st, b, 400, "bad_request", ["bulk"])
    st, b = d.api("POST", "/v1/tenants", raw=json.dumps(
        {"name": "x", "reason": "y" * (2 << 20)}).encode())
    err(st, b, 413, "payload_too_large")
    st, b = d.api("POST", "/v1/tenants", {"name": "local"})
    err(st, b, 409, "conflict", ["exists"])
    st, b = d.api("POST", "/v1/tenants/local/approve", {})
    err(st, b, 409, "conflict")
    st, b = d.api("POST", "/v1/tenants/local/approve", {"grace_seconds": 5})
    err(st, b, 400, "bad_request", ["grace_seconds"])
    st, b = d.api("GET", "/v1/tenants?limit=0")
    err(st, b, 400, "bad_request", ["limit"])
    st, b = d.api("GET", "/v1/nothing")
    err(st, b, 404, "not_found")
    st, b = d.api("GET", "/v1/tenants/nosuch")
    err(st, b, 404, "not_found")
    st, b = d.api("DELETE", "/v1/tenants")
    err(st, b, 405, "method_not_allowed")
    st, b = d.api("GET", "/v1/tenants", token="slk_" + "0" * 64)
    err(st, b, 401, "unauthorized")
    st, b = d.api("GET", "/v1/tenants", token="nonsense")
    err(st, b, 401, "unauthorized")


def test_pagination(api_daemon):
    _, d = api_daemon
    for n in ("p1", "p2", "p3"):
        new_tenant(d, n)
    names, after = [], None
    for _ in range(10):
        path = "/v1/tenants?limit=2" + (f"&after={after}" if after else "")
        st, page = d.api("GET", path)
        assert st == 200 and len(page["items"]) <= 2
        names += [t["name"] for t in page["items"]]
        after = page["next"]
        if not after:
            break
    assert names == sorted(["local", "p1", "p2", "p3"])


def test_audit_records_each_action(api_daemon):
    _, d = api_daemon
    st, tok = d.api("POST", "/v1/tokens", {"role": "operator"})
    op = tok["token"]
    actor = f"token:{tok['id']}"
    assert d.api("POST", "/v1/tenants", {"name": "aud", "reason": "signup"}, token=op)[0] == 201
    assert d.api("PATCH", "/v1/tenants/aud", {"quota_day": 1000}, token=op)[0] == 200
    for action in ("approve", "hold", "resume", "sandbox", "disable"):
        assert d.api("POST", f"/v1/tenants/aud/{action}", {"reason": action}, token=op)[0] == 200
    assert d.api("POST", "/v1/tenants/aud/users", {"username": "aud", "password": "p"},
                 token=op)[0] == 201
    st, page = d.api("GET", "/v1/audit?tenant=aud&limit=1000")
    assert st == 200
    got = [(e["actor"], e["action"]) for e in page["items"]]
    assert got == [(actor, "tenant.create"), (actor, "tenant.update")] + \
        [(actor, "tenant.state")] * 5 + [(actor, "credential.add")]
    reasons = [e["reason"] for e in page["items"] if e["action"] == "tenant.state"]
    assert reasons == ["approve", "hold", "resume", "sandbox", "disable"]
    st, t = d.api("GET", "/v1/tenants/aud")
    assert t["state"] == "disabled" and t["quota_day"] == 1000


def test_hold_grace_expires_to_disabled(api_daemon):
    _, d = api_daemon
    new_tenant(d, "grace")
    assert d.api("POST", "/v1/tenants/grace/approve")[0] == 200
    st, t = d.api("POST", "/v1/tenants/grace/hold", {"grace_seconds": 1})
    assert st == 200 and t["hold_until"]
    wait_until(lambda: d.api("GET", "/v1/tenants/grace")[1]["state"] == "disabled", 20,
               "grace expiry")
    st, page = d.api("GET", "/v1/audit?tenant=grace")
    last = page["items"][-1]
    assert last["actor"] == "policy" and "grace" in last["reason"]


def ctl(d, *args, token=True):
    env = dict(os.environ, SLUICE_API=d.api_url)
    if token:
        env["SLUICE_TOKEN"] = d.admin_token
    return subprocess.run([str(SLUICECTL), *args], capture_output=True, text=True, env=env,
                          timeout=30)


def test_sluicectl_over_the_api(api_daemon):
    _, d = api_daemon
    r = ctl(d, "tenant", "create", "cli1", "--reason", "from the CLI")
    assert r.returncode == 0, r.stderr
    assert "cli1" in r.stdout and "pending_review" in r.stdout
    r = ctl(d, "tenant", "list")
    assert r.returncode == 0 and "NAME" in r.stdout and "cli1" in r.stdout and "local" in r.stdout
    r = ctl(d, "tenant", "list", "--json")
    assert r.returncode == 0
    assert {t["name"] for t in json.loads(r.stdout)["items"]} >= {"cli1", "local"}
    for action, state in (("approve", "active"), ("hold", "on_hold"), ("resume", "active"),
                          ("sandbox", "sandbox"), ("disable", "disabled")):
        r = ctl(d, "tenant", action, "cli1", "--reason", "test")
        assert r.returncode == 0 and state in r.stdout, (action, r.stdout, r.stderr)
    r = ctl(d, "tenant", "update", "cli1", "--quota-day", "500", "--marketing-pool", "default")
    assert r.returncode == 0, r.stderr
    r = ctl(d, "tenant", "show", "cli1", "--json")
    t = json.loads(r.stdout)
    assert t["state"] == "disabled" and t["quota_day"] == 500
    assert t["streams"]["marketing"]["pool"] == "default"
    r = ctl(d, "tenant", "update", "cli1", "--quota-day", "many")
    assert r.returncode == 2 and "--quota-day" in r.stderr
    r = ctl(d, "tenant", "approve", "nosuch")
    assert r.returncode != 0 and "no such tenant" in r.stderr
    r = ctl(d, "tenant", "user", "add", "cli1", "cli-user", "--password", "pw1")
    assert r.returncode == 0, r.stderr
    r = ctl(d, "tenant", "user", "remove", "cli1", "cli-user")
    assert r.returncode == 0, r.stderr
    r = ctl(d, "token", "create", "--tenant", "cli1", "--json")
    assert r.returncode == 0, r.stderr
    tok = json.loads(r.stdout)
    r = ctl(d, "token", "list")
    assert r.returncode == 0 and tok["id"] in r.stdout
    r = ctl(d, "token", "revoke", tok["id"])
    assert r.returncode == 0
    r = ctl(d, "audit", "--tenant", "cli1")
    assert r.returncode == 0 and "tenant.create" in r.stdout and "token.revoke" in r.stdout
    r = ctl(d, "audit", "--tenant", "cli1", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["items"]
    r = ctl(d, "tenant", "--help")
    assert r.returncode == 0 and "approve" in r.stdout
    r = ctl(d, "tenant", "list", token=False)  # falls back to the token file path
    assert r.returncode != 0 and "token" in r.stderr
    env = dict(os.environ, SLUICE_API="http://127.0.0.1:1", SLUICE_TOKEN=d.admin_token)
    r = subprocess.run([str(SLUICECTL), "tenant", "list"], capture_output=True, text=True,
                       env=env, timeout=30)
    assert r.returncode != 0 and "cannot reach sluiced at http://127.0.0.1:1" in r.stderr


def test_api_over_tls(sink_factory, sluiced_factory, certs):
    d = sluiced_factory(api=certs).start()
    st, t = d.api("GET", "/v1/tenants/local")
    assert st == 200 and t["state"] == "active"
    env = dict(os.environ, SLUICE_API=d.api_url, SLUICE_TOKEN=d.admin_token,
               SLUICE_API_INSECURE="1")
    r = subprocess.run([str(SLUICECTL), "tenant", "show", "local"], capture_output=True,
                       text=True, env=env, timeout=30)
    assert r.returncode == 0 and "active" in r.stdout, r.stderr
    # plain HTTP to the TLS port gets nowhere
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", 8025, timeout=10)
    with pytest.raises((http.client.HTTPException, OSError)):
        c.request("GET", "/v1/tenants")
        c.getresponse()


def test_configuration_sets(api_daemon):
    _, d = api_daemon
    new_tenant(d, "cs")
    st, c = d.api("PUT", "/v1/tenants/cs/cfgsets/Mail.CS.test/marketing",
                  {"pool": "default", "dkim_selector": "s1"})
    assert st == 200 and c["domain"] == "mail.cs.test" and c["stream"] == "marketing"
    first_id = c["id"]
    st, c = d.api("PUT", "/v1/tenants/cs/cfgsets/mail.cs.test/marketing", {"paused": True})
    assert st == 200 and c["id"] == first_id and c["paused"] is True
    assert d.api("PUT", "/v1/tenants/cs/cfgsets/cs.test/transactional", {})[0] == 200
    st, page = d.api("GET", "/v1/tenants/cs/cfgsets?limit=1")
    assert st == 200 and len(page["items"]) == 1 and page["next"] == "cs.test:transactional"
    st, page = d.api("GET", "/v1/tenants/cs/cfgsets?after=" + page["next"])
    assert [c["domain"] for c in page["items"]] == ["mail.cs.test"] and page["next"] is None
    assert d.api("GET", "/v1/tenants/cs/cfgsets/cs.test/bulk")[0] == 404
    st, b = d.api("PUT", "/v1/tenants/cs/cfgsets/cs.test/marketing", {"paused": "yes"})
    assert st == 400 and "paused" in b["error"]["message"]
    assert d.api("PUT", "/v1/tenants/nosuch/cfgsets/cs.test/marketing", {})[0] == 404
    # a tenant token reads its own sets, not others', and cannot change them
    tok = d.api("POST", "/v1/tokens", {"role": "tenant", "tenant": "cs"})[1]["token"]
    assert d.api("GET", "/v1/tenants/cs/cfgsets", token=tok)[0] == 200
    assert d.api("GET", "/v1/tenants/local/cfgsets", token=tok)[0] == 404
    assert d.api("PUT", "/v1/tenants/cs/cfgsets/cs.test/marketing", {}, token=tok)[0] == 403


def test_held_tenant_does_not_slow_another(sink_factory, sluiced_factory):
    """A held tenant's backlog for a site sits aside: another tenant's mail
    to the same site is delivered as fast as when it is alone (measured at
    the sink: injection to arrival)."""
    import time
    sink = sink_factory()
    d = sluiced_factory(api=True).start()
    for name in ("noisy", "quiet"):
        assert d.api("POST", "/v1/tenants", {"name": name})[0] == 201
        assert d.api("POST", f"/v1/tenants/{name}/approve", {})[0] == 200

    def send(tenant, n, tag):
        sent = {}
        for i in range(0, n, 50):
            batch = [{"from": f"x@{tenant}.test", "to": [f"{tag}{k}@gmail.test"],
                      "subject": f"{tag}{k}", "text": "x"} for k in range(i, min(n, i + 50))]
            t0 = time.time()
            st, r = d.api("POST", f"/v1/messages?tenant={tenant}", {"messages": batch})
            assert st == 200 and r["accepted"] == len(batch), r
            for m in r["messages"]:
                sent[m["message_id"]] = t0
        return sent

    def latencies(sent):
        wait_until(lambda: len([m for m in sink.messages() if m.get("message_id") in sent])
                   >= len(sent), 60, "quiet tenant's mail")
        return sorted(m["time"] - sent[m["message_id"]] for m in sink.messages()
                      if m.get("message_id") in sent)

    alone = latencies(send("quiet", 40, "a"))
    assert d.api("POST", "/v1/tenants/noisy/hold", {"reason": "test"})[0] == 200
    held = send("noisy", 400, "n")
    shared = latencies(send("quiet", 40, "b"))
    # Nothing of the held tenant went out, and the quiet tenant's p90 with
    # 400 held messages queued for the same site is close to its p90 alone.
    assert not [m for m in sink.messages() if m.get("message_id") in held]
    p90 = lambda xs: xs[int(len(xs) * 0.9) - 1]
    assert p90(shared) <= 3 * p90(alone) + 0.5, (p90(alone), p90(shared))
