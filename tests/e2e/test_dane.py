"""DANE (RFC 7672, docs/dane.md): a DNSSEC-signed zone, dane.test, signed at
test time with ldns and served by a second unbound (auth-zone) on
198.51.100.53:5353; sluiced validates with the zone's DS as its trust
anchor. The receiver on 203.0.113.25 offers STARTTLS with the certs
fixture's certificate, the one on 203.0.113.26 offers no STARTTLS.

  good.dane.test   TLSA 3 1 1 matching 203.0.113.25's key  -> delivered, verified
  bad.dane.test    TLSA 3 1 1 matching nothing             -> deferred
  notls.dane.test  TLSA 3 1 1, receiver without STARTTLS   -> deferred
  bogus.dane.test  TLSA altered after signing (bogus)      -> deferred, no connection
  multi.dane.test  MX 10 mx.bad, MX 20 mx.good             -> deferred, then delivered
                                                              through mx.good
  plain.test       unsigned                                -> opportunistic TLS
  shared.test      unsigned, MX mx.bad.dane.test           -> delivered, but its
                   sessions never carry bad.dane.test's mail
"""
import hashlib
import re
import shutil
import smtplib
import subprocess

import pytest

from conftest import DNS_ADDR, SLUICED, SOURCE_IPS, message, wait_until

DANE_DNS_PORT = 5353
TLS_SINK = "203.0.113.25"
PLAIN_SINK = "203.0.113.26"

pytestmark = pytest.mark.skipif(not shutil.which("ldns-signzone"),
                                reason="ldnsutils not installed (make deps)")


def spki_sha256(cert):
    pub = subprocess.run(["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"],
                         check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                         check=True, capture_output=True).stdout
    return hashlib.sha256(der).hexdigest()


def dane_zone(digest):
    return f"""$ORIGIN dane.test.
$TTL 300
@ IN SOA ns.dane.test. hostmaster.dane.test. 1 3600 600 86400 300
@ IN NS ns.dane.test.
ns IN A {DNS_ADDR}
good IN MX 10 mx.good.dane.test.
mx.good IN A {TLS_SINK}
_25._tcp.mx.good IN TLSA 3 1 1 {digest}
bad IN MX 10 mx.bad.dane.test.
mx.bad IN A {TLS_SINK}
_25._tcp.mx.bad IN TLSA 3 1 1 {"00" * 32}
notls IN MX 10 mx.notls.dane.test.
mx.notls IN A {PLAIN_SINK}
_25._tcp.mx.notls IN TLSA 3 1 1 {digest}
bogus IN MX 10 mx.bogus.dane.test.
multi IN MX 10 mx.bad.dane.test.
multi IN MX 20 mx.good.dane.test.
mx.bogus IN A {TLS_SINK}
_25._tcp.mx.bogus IN TLSA 3 1 1 {digest}
"""


UNBOUND_CONF = """server:
	interface: {addr}
	port: {port}
	do-daemonize: no
	chroot: ""
	username: ""
	directory: "{dir}"
	pidfile: ""
	use-syslog: no
	logfile: ""
	verbosity: 0
	do-ip6: no
	access-control: 0.0.0.0/0 allow
	module-config: "iterator"
	local-zone: "test." nodefault
	local-zone: "plain.test." static
	local-data: "plain.test. MX 10 mx.plain.test."
	local-data: "mx.plain.test. A {tls_sink}"
	local-zone: "shared.test." static
	local-data: "shared.test. MX 10 mx.bad.dane.test."
auth-zone:
	name: "dane.test."
	zonefile: "{dir}/dane.test.zone.signed"
	for-downstream: yes
	for-upstream: no
"""


def dns_up(port):
    import socket
    import struct
    q = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(p)]) + p for p in b"good.dane.test".split(b".")) + b"\0"
    q += struct.pack(">HH", 15, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    try:
        s.sendto(q, (DNS_ADDR, port))
        r = s.recv(4096)
        return len(r) > 12 and r[3] & 0x0f == 0 and struct.unpack(">H", r[6:8])[0] > 0
    except OSError:
        return False
    finally:
        s.close()


@pytest.fixture(scope="module")
def dane_dns(tmp_path_factory, certs):
    """The signed zone's server; yields the trust anchor file (its DS)."""
    d = tmp_path_factory.mktemp("dane-dns")
    (d / "dane.test.zone").write_text(dane_zone(spki_sha256(certs[0])))
    key = subprocess.run(["ldns-keygen", "-a", "ECDSAP256SHA256", "-k", "dane.test"], cwd=d,
                         check=True, capture_output=True, text=True).stdout.strip()
    subprocess.run(["ldns-signzone", "-o", "dane.test.", "dane.test.zone", key], cwd=d,
                   check=True, capture_output=True)
    # Alter bogus's TLSA record after signing: its RRSIG no longer fits.
    signed = d / "dane.test.zone.signed"
    text, n = re.subn(r"^(_25\._tcp\.mx\.bogus\.dane\.test\.\s+\d+\s+IN\s+TLSA\s+3 1 1 )[0-9a-fA-F]+",
                      lambda m: m.group(1) + "11" * 32, signed.read_text(), flags=re.M)
    assert n == 1
    signed.write_text(text)
    (d / "unbound.conf").write_text(UNBOUND_CONF.format(addr=DNS_ADDR, port=DANE_DNS_PORT,
                                                        dir=d, tls_sink=TLS_SINK))
    p = subprocess.Popen(["/usr/sbin/unbound", "-d", "-c", str(d / "unbound.conf")],
                         stdout=subprocess.DEVNULL, stderr=open(d / "unbound.log", "w"))
    wait_until(lambda: dns_up(DANE_DNS_PORT), 10, "the DANE zone's unbound to answer")
    yield d / f"{key}.ds"
    p.terminate()
    p.wait(5)


def send(rcpt):
    mid, msg = message("news@acme.test", rcpt)
    with smtplib.SMTP("127.0.0.1", 2525, timeout=10) as c:
        c.ehlo("client.test")
        assert c.sendmail("news@acme.test", [rcpt], msg) == {}
    return mid


def counter(d, name):
    for line in d.metrics().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    return 0.0


@pytest.fixture
def dane_sluiced(sluiced_factory, dane_dns):
    extra = (f"dns:\n  servers: [\"{DNS_ADDR}:{DANE_DNS_PORT}\"]\n"
             f"  trust_anchor_file: \"{dane_dns}\"\n")
    return sluiced_factory(dns=False, delivery={"dane": "on"}, extra=extra).start()


@pytest.fixture
def sinks(sink_factory, certs):
    return (sink_factory(addrs=[f"{TLS_SINK}:25"], tls=certs, name="tls"),
            sink_factory(addrs=[f"{PLAIN_SINK}:25"], name="notls"))


def test_dane_match_delivers_verified(sinks, dane_sluiced):
    tls_sink, _ = sinks
    mid = send("user@good.dane.test")
    got = tls_sink.wait_messages(1)
    assert got[0]["message_id"] == mid and got[0]["tls"] is True
    ev = dane_sluiced.wait_events("delivered", 1)
    assert ev[0]["site"] == "mx.good.dane.test"
    assert ev[0]["tls"]["policy"] == "dane" and ev[0]["tls"]["verified"] is True, ev[0]
    assert counter(dane_sluiced, "sluice_dane_verified_total") >= 1
    assert counter(dane_sluiced, "sluice_dane_failed_total") == 0


def test_dane_mismatch_defers(sinks, dane_sluiced):
    tls_sink, _ = sinks
    send("user@bad.dane.test")
    ev = dane_sluiced.wait_events("deferred", 1)
    assert ev[0]["response"].startswith("451 4.7.5 DANE: no matching TLSA record"), ev[0]
    assert ev[0]["tls"]["policy"] == "dane" and ev[0]["tls"]["failure"], ev[0]
    assert tls_sink.messages() == []
    assert counter(dane_sluiced, "sluice_dane_failed_total") >= 1
    assert counter(dane_sluiced, "sluice_dane_verified_total") == 0


def test_dane_without_starttls_defers(sinks, dane_sluiced):
    _, plain_sink = sinks
    send("user@notls.dane.test")
    ev = dane_sluiced.wait_events("deferred", 1)
    assert ev[0]["response"].startswith("451 4.7.4 DANE:"), ev[0]
    assert "STARTTLS not offered" in ev[0]["response"]
    assert ev[0]["tls"]["failure"] == "starttls-not-supported", ev[0]
    assert plain_sink.messages() == []
    # No plaintext fallback on the retries either.
    dane_sluiced.wait_events("deferred", 2)
    assert plain_sink.messages() == []


def test_bogus_tlsa_defers_without_connecting(sinks, dane_sluiced):
    tls_sink, _ = sinks
    send("user@bogus.dane.test")
    ev = dane_sluiced.wait_events("deferred", 1)
    assert ev[0]["response"] == \
        "451 4.7.5 DANE: TLSA lookup for _25._tcp.mx.bogus.dane.test is bogus", ev[0]
    assert tls_sink.messages() == []
    # (the sink's own readiness probe connects from elsewhere)
    assert [c for c in tls_sink.connections() if c["src"].split(":")[0] in SOURCE_IPS] == []
    assert counter(dane_sluiced, "sluice_dane_lookup_deferred_total") >= 1
    assert ev[0]["tls"] == {"policy": "dane", "failure": "dnssec-invalid"} or \
        ev[0]["tls"]["failure"] == "dnssec-invalid", ev[0]


def test_unsigned_domain_is_opportunistic(sinks, dane_sluiced):
    tls_sink, _ = sinks
    mid = send("user@plain.test")
    got = tls_sink.wait_messages(1)
    assert got[0]["message_id"] == mid and got[0]["tls"] is True
    dane_sluiced.wait_events("delivered", 1)
    assert counter(dane_sluiced, "sluice_dane_verified_total") == 0
    assert counter(dane_sluiced, "sluice_dane_failed_total") == 0


def test_dane_failure_moves_on_to_the_next_mx(sinks, dane_sluiced):
    tls_sink, _ = sinks
    mid = send("user@multi.dane.test")
    ev = dane_sluiced.wait_events("deferred", 1)
    assert ev[0]["response"].startswith("451 4.7.5 DANE: no matching TLSA record for "
                                        "mx.bad.dane.test"), ev[0]
    got = tls_sink.wait_messages(1)
    assert got[0]["message_id"] == mid
    done = dane_sluiced.wait_events("delivered", 1)
    assert done[0]["site"] == "mx.good.dane.test"
    assert counter(dane_sluiced, "sluice_dane_verified_total") >= 1


def test_dane_domain_never_shares_an_unauthenticated_session(sinks, dane_sluiced):
    tls_sink, _ = sinks
    mid, msg = message("news@acme.test", "user@shared.test")
    with smtplib.SMTP("127.0.0.1", 2525, timeout=10) as c:
        c.ehlo("client.test")
        assert c.sendmail("news@acme.test", ["user@shared.test", "user@bad.dane.test"],
                          msg) == {}
    got = tls_sink.wait_messages(1)
    assert got[0]["rcpts"] == ["user@shared.test"]
    dane_sluiced.wait_events("deferred", 2)
    assert all(e["rcpt"] == "user@bad.dane.test" for e in dane_sluiced.events("deferred"))
    assert [m["rcpts"] for m in tls_sink.messages()] == [["user@shared.test"]]


def test_dane_on_needs_trust_anchor(sluiced_factory):
    d = sluiced_factory(delivery={"dane": "on"})
    r = subprocess.run([str(SLUICED), "-n", "-c", str(d.conf)], capture_output=True, text=True)
    assert r.returncode != 0
    assert "delivery.dane" in r.stderr and "trust_anchor_file" in r.stderr
