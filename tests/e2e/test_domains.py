"""Sending domains against a running sluiced and a real DNS server: register
a domain over the API, publish (or not) the records sluice generates in an
unbound of our own inside the test namespace, verify (pass, and each kind
of failure: missing, wrong SPF, wrong DKIM key, wrong return path), and
the effect on injection: an API-created tenant's unverified sending domain
is refused at SMTP MAIL FROM and per message over HTTP; a tenant declared
in the YAML config is exempt."""
import smtplib
import socket
import struct
import subprocess
import time

import pytest

from conftest import ROOT, SLUICECTL, message, wait_until
from test_api import client_ctx

ZONE_ADDR = "198.51.100.53"
ZONE_PORT = 5354


def _quote_txt(value):
    return " ".join('"%s"' % value[i:i + 255] for i in range(0, len(value), 255))


class Zone:
    """An unbound of our own (tests/dns.conf.in plus extra records) on
    ZONE_ADDR:ZONE_PORT; restart() with other records."""

    def __init__(self, workdir):
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = None

    def restart(self, records):
        self.stop()
        conf = (ROOT / "tests/dns.conf.in").read_text().replace("@DIR@", str(self.dir))
        conf = conf.replace("port: 53\n", f"port: {ZONE_PORT}\n")
        for name, rtype, value in records:
            if rtype == "TXT":
                value = _quote_txt(value)
            conf += f"\tlocal-data: '{name}. {rtype} {value}'\n"
        (self.dir / "unbound.conf").write_text(conf)
        self.proc = subprocess.Popen(["/usr/sbin/unbound", "-d", "-c",
                                      str(self.dir / "unbound.conf")],
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(self.dir / "unbound.log", "w"))
        wait_until(self.ready, 10, "our unbound to answer")

    def ready(self):
        q = struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\x05gmail\x04test\x00" + \
            struct.pack(">HH", 15, 1)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.3)
        try:
            s.sendto(q, (ZONE_ADDR, ZONE_PORT))
            return len(s.recv(512)) > 12
        except OSError:
            return False
        finally:
            s.close()

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(5)
            self.proc = None


@pytest.fixture
def zone(tmp_path):
    z = Zone(tmp_path / "zone")
    z.restart([])
    yield z
    z.stop()


def sender_auth(extra=""):
    return (f"dns:\n  servers: [\"{ZONE_ADDR}:{ZONE_PORT}\"]\n"
            "sender_auth:\n  dmarc_rua: dmarc@sluice.test\n" + extra)


@pytest.fixture
def daemon(sink_factory, sluiced_factory, certs, zone):
    sink = sink_factory()
    d = sluiced_factory(tls=certs, api=True, dns=False, extra=sender_auth()).start()
    return sink, d, zone


def records_of(d):
    return {r["kind"]: r for r in d["records"]}


def publish(rec, skip=(), override=None):
    out = []
    for kind, r in rec.items():
        if kind in skip:
            continue
        value = (override or {}).get(kind, r["value"])
        out.append((r["name"], r["type"], value + ("." if r["type"] == "CNAME" else "")))
    return out


def smtp_auth_send(user, password, frm, rcpt, msg):
    with smtplib.SMTP("127.0.0.1", 2525, timeout=10) as c:
        c.ehlo("client.test")
        c.starttls(context=client_ctx())
        c.ehlo("client.test")
        c.login(user, password)
        return c.sendmail(frm, [rcpt], msg)


def test_records_and_verification(daemon):
    sink, d, zone = daemon
    st, t = d.api("POST", "/v1/tenants", {"name": "acme"})
    assert st == 201, t
    st, dom = d.api("POST", "/v1/domains", {"tenant": "acme", "domain": "mail.acme.test",
                                            "stream": "marketing"})
    assert st == 201, dom
    rec = records_of(dom)
    assert rec["spf"]["value"] == "v=spf1 ip4:198.51.100.10 ip4:198.51.100.11 ~all"
    assert rec["dkim"]["name"] == "sl1._domainkey.mail.acme.test"
    assert rec["dkim"]["value"].startswith("v=DKIM1; k=rsa; p=")
    assert rec["dmarc"]["value"] == "v=DMARC1; p=none; rua=mailto:dmarc@sluice.test"
    assert rec["return_path"]["type"] == "MX"
    assert d.api("POST", "/v1/domains", {"tenant": "acme", "domain": "mail.acme.test"})[0] == 409

    # nothing published: all missing
    st, v = d.api("POST", "/v1/domains/mail.acme.test/verify")
    assert st == 200 and not v["verified"]
    assert {r["kind"]: r["status"] for r in v["records"]} == {
        "spf": "missing", "dkim": "missing", "dmarc": "missing", "return_path": "missing"}

    # wrong SPF, wrong DKIM key, return path elsewhere, no DMARC
    wrong = publish(rec, skip=("dmarc",), override={
        "spf": "v=spf1 ip4:198.51.100.99 -all",
        "dkim": "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAwrong",
        "return_path": "10 mx.elsewhere.test"})
    zone.restart(wrong)
    st, v = d.api("POST", "/v1/domains/mail.acme.test/verify")
    assert st == 200 and not v["verified"]
    assert {r["kind"]: r["status"] for r in v["records"]} == {
        "spf": "mismatch", "dkim": "mismatch", "dmarc": "missing", "return_path": "mismatch"}

    # sluicectl shows the same and exits 1 while unverified
    r = subprocess.run([str(SLUICECTL), "domain", "verify", "mail.acme.test", "--api", d.api_url,
                        "--token", d.admin_token], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "NOT verified" in r.stdout and "mismatch" in r.stdout

    # everything right (MX value "10 host" → "10 host.")
    zone.restart(publish(rec))
    r = subprocess.run([str(SLUICECTL), "domain", "verify", "mail.acme.test", "--api", d.api_url,
                        "--token", d.admin_token], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "verified" in r.stdout
    st, lst = d.api("GET", "/v1/domains?tenant=acme")
    assert st == 200 and lst["items"][0]["verified"] is True
    audit = d.api("GET", "/v1/audit?limit=1000")[1]["items"]
    assert any(a["action"] == "domain.verified" for a in audit)


def test_injection_refused_until_verified(daemon):
    sink, d, zone = daemon
    assert d.api("POST", "/v1/tenants", {"name": "acme"})[0] == 201
    assert d.api("POST", "/v1/tenants/acme/approve")[0] == 200
    assert d.api("POST", "/v1/tenants/acme/users", {"username": "acme-smtp",
                                                    "password": "acme-secret"})[0] == 201
    st, dom = d.api("POST", "/v1/domains", {"tenant": "acme", "domain": "mail.acme.test"})
    assert st == 201

    # SMTP: MAIL FROM an unverified domain is refused with the fix in the text
    mid, msg = message("news@mail.acme.test", "u@gmail.test")
    with pytest.raises(smtplib.SMTPSenderRefused) as e:
        smtp_auth_send("acme-smtp", "acme-secret", "news@mail.acme.test", "u@gmail.test", msg)
    assert e.value.smtp_code == 550
    assert (b"5.7.1 sending domain mail.acme.test is not verified for tenant acme"
            in e.value.smtp_error)
    # HTTP: the message is rejected, the request is not
    st, b = d.api("POST", "/v1/messages?tenant=acme", {"messages": [{
        "from": "news@mail.acme.test", "to": ["u@gmail.test"], "subject": "s", "text": "t"}]})
    assert st == 200, b
    assert b["rejected"] == 1 and "not verified" in b["messages"][0]["reason"]

    # the YAML tenant "local" is exempt (enforce: api_tenants)
    with smtplib.SMTP("127.0.0.1", 2525, timeout=10) as c:
        c.ehlo("client.test")
        c.sendmail("x@unverified.test", ["u@gmail.test"], message("x@unverified.test",
                                                                    "u@gmail.test")[1])

    # publish and verify: accepted, signed with the domain's key, delivered
    zone.restart(publish(records_of(dom)))
    st, v = d.api("POST", "/v1/domains/mail.acme.test/verify")
    assert st == 200 and v["verified"], v
    mid, msg = message("news@mail.acme.test", "u@gmail.test", subject="after")
    wait_until(lambda: _sends(smtp_auth_send, "acme-smtp", "acme-secret",
                              "news@mail.acme.test", "u@gmail.test", msg), 10,
               "the data path to see the verified domain")
    sink.wait_messages(2)
    import dkim
    rec = records_of(dom)["dkim"]
    signed = [f.read_bytes() for f in sink.save.glob("*.eml")
              if b"Subject: after" in f.read_bytes()]
    assert signed and signed[0].startswith(b"DKIM-Signature:"), signed[:1]
    assert b"d=mail.acme.test" in signed[0] and b"s=sl1" in signed[0]

    def dnsfunc(name, timeout=5):
        assert name.decode().rstrip(".") == rec["name"]
        return rec["value"].encode()
    assert dkim.DKIM(signed[0]).verify(dnsfunc=dnsfunc)


def _sends(fn, *args):
    try:
        fn(*args)
        return True
    except smtplib.SMTPSenderRefused:
        time.sleep(0.1)
        return False
