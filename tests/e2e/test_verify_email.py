"""Verify-by-email end to end: the API creates a request, the owner of the
address sends any message to the returned verify+TOKEN@ address through the
inbound listener (helper H's), and sluice checks it with real SPF (libspf2)
and DKIM (a message signed by `sluicectl dkim sign`, verified by
libopendkim) against records served by an unbound in the test namespace:
aligned SPF passes, aligned DKIM passes, a forged From (signed by another
domain, sent from an address SPF does not allow) is refused and audited;
the verified-address webhook reaches a local receiver with a valid
HMAC-SHA256 signature."""
import hashlib
import hmac
import http.server
import json
import smtplib
import subprocess
import threading

import pytest

from conftest import ROOT, SLUICECTL, wait_until
from test_domains import ZONE_ADDR, ZONE_PORT, Zone

INBOUND_IP = "198.51.100.12"
INBOUND = f"{INBOUND_IP}:2526"
GOOD_IP = "198.51.100.12"   # the owner's SPF allows this one
BAD_IP = "198.51.100.11"    # and not this one
SECRET = "hook-secret"


class Hooks(http.server.BaseHTTPRequestHandler):
    got = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hooks.got.append((self.headers.get("X-Sluice-Signature"), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


@pytest.fixture
def hooks():
    Hooks.got = []
    srv = http.server.HTTPServer(("127.0.0.1", 0), Hooks)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()


def keygen(tmp_path, name):
    key = tmp_path / f"{name}.pem"
    r = subprocess.run([str(SLUICECTL), "dkim", "keygen", "--algo", "rsa-sha256", "--out",
                        str(key)], capture_output=True, text=True, check=True)
    rec = subprocess.run([str(SLUICECTL), "dkim", "dns", "--key", str(key)],
                         capture_output=True, text=True, check=True).stdout.strip()
    del r
    return key, rec.split("\n")[-1].strip().strip('"')


def sign(key, domain, msg):
    return subprocess.run([str(SLUICECTL), "dkim", "sign", "--domain", domain, "--selector",
                           "s1", "--key", str(key)], input=msg.encode(),
                          capture_output=True, check=True).stdout


def send(src_ip, frm, to, body):
    with smtplib.SMTP(INBOUND_IP, 2526, timeout=20, source_address=(src_ip, 0)) as c:
        c.ehlo("mx.owner.test")
        return c.sendmail(frm, [to], body)


def msg(frm, to, subject="verify me"):
    return (f"From: Owner <{frm}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
            "Date: Mon, 23 Nov 2026 12:00:00 +0000\r\nMessage-ID: <v1@owner.test>\r\n"
            "\r\nhello\r\n")


@pytest.fixture
def daemon(tmp_path, sink_factory, sluiced_factory, hooks):
    owner_key, owner_rec = keygen(tmp_path, "owner")
    evil_key, evil_rec = keygen(tmp_path, "evil")
    zone = Zone(tmp_path / "zone")
    zone.restart([("owner.test", "TXT", f"v=spf1 ip4:{GOOD_IP} -all"),
                  ("s1._domainkey.owner.test", "TXT", owner_rec),
                  ("evil.test", "TXT", f"v=spf1 ip4:{BAD_IP} -all"),
                  ("s1._domainkey.evil.test", "TXT", evil_rec)])
    extra = (f"dns:\n  servers: [\"{ZONE_ADDR}:{ZONE_PORT}\"]\n"
             "bounces:\n  return_path_domain: bounces.sluice.test\n"
             f"  bounce_rules: \"{ROOT / 'configs/bounce-rules.conf'}\"\n"
             "sender_auth:\n  verification_domain: verify.sluice.test\n"
             f"  webhook_url: \"http://127.0.0.1:{hooks.server_port}/hook\"\n"
             f"  webhook_secret: \"{SECRET}\"\n")
    sink_factory()
    d = sluiced_factory(api=True, dns=False, inbound=INBOUND, extra=extra).start()
    yield d, owner_key, evil_key
    zone.stop()


def request(d, address):
    assert d.api("POST", "/v1/tenants", {"name": "acme"})[0] in (201, 409)
    st, r = d.api("POST", "/v1/verifications", {"tenant": "acme", "address": address})
    assert st == 201, r
    assert r["write_to"].startswith("verify+") and r["write_to"].endswith("@verify.sluice.test")
    return r["write_to"]


def test_spf_aligned_passes_and_webhook(daemon):
    d, _, _ = daemon
    to = request(d, "owner@owner.test")
    send(GOOD_IP, "owner@owner.test", to, msg("owner@owner.test", to))
    st, r = d.api("GET", "/v1/verifications/owner@owner.test?tenant=acme")
    assert st == 200 and r["verified"] and r["method"] == "spf", r
    wait_until(lambda: Hooks.got, 15, "the webhook")
    sig, body = Hooks.got[0]
    want = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert sig == f"sha256={want}"
    j = json.loads(body)
    assert j["event"] == "address.verified" and j["address"] == "owner@owner.test"
    assert j["tenant"] == "acme" and j["method"] == "spf"


def test_dkim_aligned_passes(daemon):
    d, owner_key, _ = daemon
    to = request(d, "news@owner.test")
    # from an address SPF does not allow: only the signature can pass it
    send(BAD_IP, "news@owner.test", to, sign(owner_key, "owner.test", msg("news@owner.test", to)))
    st, r = d.api("GET", "/v1/verifications/news@owner.test?tenant=acme")
    assert st == 200 and r["verified"] and r["method"] == "dkim", r


def test_forged_from_refused(daemon):
    d, _, evil_key = daemon
    to = request(d, "ceo@owner.test")
    # evil.test signs (validly) and its SPF passes, but From says owner.test
    forged = sign(evil_key, "evil.test", msg("ceo@owner.test", to))
    with pytest.raises(smtplib.SMTPDataError) as e:
        send(BAD_IP, "x@evil.test", to, forged)
    assert e.value.smtp_code == 550 and b"5.7.1" in e.value.smtp_error
    # no signature, wrong IP
    with pytest.raises(smtplib.SMTPDataError):
        send(BAD_IP, "ceo@owner.test", to, msg("ceo@owner.test", to))
    st, r = d.api("GET", "/v1/verifications/ceo@owner.test?tenant=acme")
    assert st == 200 and not r["verified"]
    audit = d.api("GET", "/v1/audit?limit=1000")[1]["items"]
    refused = [a for a in audit if a["action"] == "verification.refused"]
    assert len(refused) == 2 and "evil.test" in refused[0]["reason"]
    assert not Hooks.got


def test_requests_rate_limited_and_validated(daemon):
    d, _, _ = daemon
    assert d.api("POST", "/v1/tenants", {"name": "acme"})[0] == 201
    st, b = d.api("POST", "/v1/verifications", {"tenant": "acme", "address": "not an address"})
    assert st == 400
    codes = [d.api("POST", "/v1/verifications", {"tenant": "acme",
                                                  "address": f"u{i}@owner.test"})[0]
             for i in range(21)]
    assert codes[:20] == [201] * 20 and codes[20] == 429  # 20 per source an hour


def test_sandbox_sends_only_to_verified_addresses(daemon):
    """A tenant in the sandbox (issue: new tenants may be limited to their own
    verified addresses) gets RCPT 550 for anything else, over SMTP and HTTP."""
    d, _, _ = daemon
    st, r = d.api("POST", "/v1/verifications", {"tenant": "local", "address": "owner@owner.test"})
    assert st == 201, r
    send(GOOD_IP, "owner@owner.test", r["write_to"], msg("owner@owner.test", r["write_to"]))
    assert d.api("GET", "/v1/verifications/owner@owner.test?tenant=local")[1]["verified"]
    assert d.api("POST", "/v1/tenants/local/sandbox", {"reason": "new signup"})[0] == 200
    with smtplib.SMTP("127.0.0.1", 2525, timeout=10) as c:
        c.ehlo("client.test")
        c.mail("a@acme.test")
        code, text = c.rcpt("x@gmail.test")
        assert code == 550 and b"sandbox" in text, (code, text)
        code, _ = c.rcpt("Owner@owner.test")
        assert code == 250
        c.rset()
    st, r = d.api("POST", "/v1/messages?tenant=local",
                  {"messages": [{"from": "a@acme.test", "to": ["owner@owner.test", "y@gmail.test"],
                                 "text": "hi"}]})
    assert st == 200, r
    rc = {x["rcpt"]: x for x in r["messages"][0]["recipients"]}
    assert rc["owner@owner.test"]["status"] == "accepted"
    assert rc["y@gmail.test"]["status"] == "rejected" and "sandbox" in rc["y@gmail.test"]["reason"]
    # approved: the restriction is gone
    assert d.api("POST", "/v1/tenants/local/approve", {})[0] == 200
    with smtplib.SMTP("127.0.0.1", 2525, timeout=10) as c:
        c.ehlo("client.test")
        c.mail("a@acme.test")
        assert c.rcpt("x@gmail.test")[0] == 250
