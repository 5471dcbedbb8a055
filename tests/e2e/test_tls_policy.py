"""Outbound TLS policies: require, verify, MTA-STS (RFC 8461), the "tls"
field of the event log and the TLS-RPT counters (docs/tls.md)."""
import http.server
import os
import re
import smtplib
import ssl
import subprocess
import threading

import pytest

from conftest import SLUICECTL, message, wait_until

RCV = "203.0.113.28:25"        # every receiver of these tests (tests/dns.conf.in)
STS_SERVER = ("203.0.113.29", 443)

POLICIES = {
    "mta-sts.sts.test": "version: STSv1\r\nmode: enforce\r\nmx: mx.sts.test\r\nmax_age: 86400\r\n",
    "mta-sts.sts-bad.test": "version: STSv1\nmode: enforce\nmx: mx.sts.test\nmax_age: 86400\n",
    "mta-sts.sts-testing.test":
        "version: STSv1\nmode: testing\nmx: *.sts-testing.test\nmax_age: 600\n",
    "mta-sts.sts-invalid.test": "version: STSv2\nmode: enforce\nmx: mx.sts-invalid.test\n",
}
# Served, but the server's certificate does not name it.
NOT_IN_CERT = {"mta-sts.sts-webpki.test":
               "version: STSv1\nmode: enforce\nmx: nothing.example\nmax_age: 600\n"}


def send(frm, rcpts, msg, port=2525):
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("client.test")
        return c.sendmail(frm, rcpts, msg)


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A test CA and certificates it signed, by name."""
    d = tmp_path_factory.mktemp("pki")
    ca, ca_key = d / "ca.pem", d / "ca.key"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "30", "-subj", "/CN=Sluice Test CA", "-keyout", str(ca_key),
            "-out", str(ca), "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def issue(name, *more):
        key, csr, crt, ext = (d / f"{name}.key", d / f"{name}.csr", d / f"{name}.pem",
                              d / f"{name}.ext")
        ext.write_text("subjectAltName=" + ",".join(f"DNS:{n}" for n in (name, *more)) + "\n")
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(csr))
        openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
                "-CAcreateserial", "-days", "30", "-extfile", str(ext), "-out", str(crt))
        return crt, key

    return {"ca": ca, "issue": issue}


@pytest.fixture
def sts_server(pki):
    """The policy server of every test domain, HTTPS on 203.0.113.29:443."""
    crt, key = pki["issue"](*POLICIES)
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            host = (self.headers.get("Host") or "").split(":")[0]
            hits.append((host, self.path))
            body = POLICIES.get(host) or NOT_IN_CERT.get(host)
            if self.path != "/.well-known/mta-sts.txt" or body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(STS_SERVER, Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield hits
    srv.shutdown()
    srv.server_close()


def rpt(d, domain, policy, result):
    """The sluice_tls_rpt_total series, 0 when absent."""
    pat = (r'^sluice_tls_rpt_total\{domain="%s",policy="%s",result="%s"\} (\d+)$'
           % (re.escape(domain), re.escape(policy), re.escape(result)))
    m = re.search(pat, d.metrics(), re.M)
    return int(m.group(1)) if m else 0


def test_require_defers_without_starttls(sink_factory, sluiced_factory):
    sink = sink_factory(addrs=[RCV])  # no certificate: no STARTTLS
    d = sluiced_factory(delivery={"require_tls_domains": "[tls.test]"}).start()
    _, msg = message("a@acme.test", "b@tls.test")
    send("a@acme.test", ["b@tls.test"], msg)
    e = d.wait_events("deferred", 1)[0]
    assert e["response"].startswith("451 4.7.4")
    assert e["tls"] == {"policy": "require", "version": None, "cipher": None,
                        "verified": False, "failure": "starttls-not-supported"}
    assert sink.messages() == []
    wait_until(lambda: rpt(d, "tls.test", "require", "starttls-not-supported") >= 1, 10,
               "the starttls-not-supported counter")


def test_opportunistic_event_fields(sink_factory, sluiced_factory, certs):
    sink_factory(addrs=[RCV], tls=certs)
    d = sluiced_factory().start()
    _, msg = message("a@acme.test", "b@tls.test")
    send("a@acme.test", ["b@tls.test"], msg)
    e = d.wait_events("delivered", 1)[0]
    assert e["tls"]["policy"] == "opportunistic"
    assert e["tls"]["version"] in ("TLSv1.2", "TLSv1.3") and e["tls"]["cipher"]
    assert e["tls"]["verified"] is False and "failure" not in e["tls"]


def test_opportunistic_plaintext_is_null(sink_factory, sluiced_factory):
    sink_factory(addrs=[RCV])
    d = sluiced_factory().start()
    _, msg = message("a@acme.test", "b@tls.test")
    send("a@acme.test", ["b@tls.test"], msg)
    e = d.wait_events("delivered", 1)[0]
    assert e["tls"] is None


def test_verify_delivers_with_valid_cert(pki, sink_factory, sluiced_factory):
    sink = sink_factory(addrs=[RCV], tls=pki["issue"]("mx.tls.test"))
    d = sluiced_factory(delivery={"verify_tls_domains": "[tls.test]",
                                  "tls_ca_file": f'"{pki["ca"]}"'}).start()
    _, msg = message("a@acme.test", "b@tls.test")
    send("a@acme.test", ["b@tls.test"], msg)
    sink.wait_messages(1)
    e = d.wait_events("delivered", 1)[0]
    assert e["tls"]["policy"] == "verify" and e["tls"]["verified"] is True
    assert rpt(d, "tls.test", "verify", "success") == 1


def test_verify_defers_on_wrong_name(pki, sink_factory, sluiced_factory):
    sink = sink_factory(addrs=[RCV], tls=pki["issue"]("wrong.tls.test"))
    d = sluiced_factory(delivery={"verify_tls_domains": "[tls.test]",
                                  "tls_ca_file": f'"{pki["ca"]}"'}).start()
    _, msg = message("a@acme.test", "b@tls.test")
    send("a@acme.test", ["b@tls.test"], msg)
    e = d.wait_events("deferred", 1)[0]
    assert e["response"].startswith("451 4.7.5")
    assert e["tls"]["policy"] == "verify"
    assert e["tls"]["failure"] == "certificate-host-mismatch"
    assert sink.messages() == []
    assert rpt(d, "tls.test", "verify", "certificate-host-mismatch") >= 1


def test_tls_verify_turns_require_into_verify(sink_factory, sluiced_factory, certs):
    sink = sink_factory(addrs=[RCV], tls=certs)  # self-signed, another name
    d = sluiced_factory(delivery={"require_tls_domains": "[tls.test]",
                                  "tls_verify": "true"}).start()
    _, msg = message("a@acme.test", "b@tls.test")
    send("a@acme.test", ["b@tls.test"], msg)
    e = d.wait_events("deferred", 1)[0]
    assert e["tls"]["policy"] == "verify"
    assert e["tls"]["failure"] in ("certificate-not-trusted", "certificate-host-mismatch")
    assert sink.messages() == []


def sts_sluiced(sluiced_factory, pki):
    return sluiced_factory(delivery={"mta_sts": "true",
                                     "tls_ca_file": f'"{pki["ca"]}"'}).start()


def test_mta_sts_enforce_delivers_verified(pki, sts_server, sink_factory, sluiced_factory):
    sink = sink_factory(addrs=[RCV], tls=pki["issue"]("mx.sts.test"))
    d = sts_sluiced(sluiced_factory, pki)
    _, msg = message("a@acme.test", "b@sts.test")
    send("a@acme.test", ["b@sts.test"], msg)
    sink.wait_messages(1)
    e = d.wait_events("delivered", 1)[0]
    assert e["tls"]["policy"] == "mta-sts" and e["tls"]["verified"] is True
    assert ("mta-sts.sts.test", "/.well-known/mta-sts.txt") in sts_server
    assert rpt(d, "sts.test", "mta-sts", "success") == 1
    # The policy is cached: the next message fetches nothing.
    _, msg = message("a@acme.test", "c@sts.test")
    send("a@acme.test", ["c@sts.test"], msg)
    sink.wait_messages(2)
    d.wait_events("delivered", 2)
    assert len(sts_server) == 1


def test_mta_sts_enforce_bad_cert_defers(pki, sts_server, sink_factory, sluiced_factory,
                                         certs):
    sink = sink_factory(addrs=[RCV], tls=certs)  # not from the CA
    d = sts_sluiced(sluiced_factory, pki)
    _, msg = message("a@acme.test", "b@sts.test")
    send("a@acme.test", ["b@sts.test"], msg)
    e = d.wait_events("deferred", 1)[0]
    assert e["tls"]["policy"] == "mta-sts"
    assert e["tls"]["failure"] in ("certificate-not-trusted", "certificate-host-mismatch")
    assert sink.messages() == []


def test_mta_sts_enforce_mx_mismatch_defers(pki, sts_server, sink_factory, sluiced_factory):
    sink = sink_factory(addrs=[RCV], tls=pki["issue"]("mx.elsewhere.test"))
    d = sts_sluiced(sluiced_factory, pki)
    _, msg = message("a@acme.test", "b@sts-bad.test")
    send("a@acme.test", ["b@sts-bad.test"], msg)
    e = d.wait_events("deferred", 1)[0]
    assert e["response"].startswith("451 4.7.5")
    assert "MTA-STS" in e["response"]
    assert e["tls"] == {"policy": "mta-sts", "version": None, "cipher": None,
                        "verified": False, "failure": "validation-failure"}
    assert sink.messages() == []
    assert rpt(d, "sts-bad.test", "mta-sts", "validation-failure") >= 1


def test_mta_sts_testing_delivers_and_counts(pki, sts_server, sink_factory, sluiced_factory,
                                            certs):
    sink = sink_factory(addrs=[RCV], tls=certs)  # does not verify
    d = sts_sluiced(sluiced_factory, pki)
    _, msg = message("a@acme.test", "b@sts-testing.test")
    send("a@acme.test", ["b@sts-testing.test"], msg)
    sink.wait_messages(1)
    e = d.wait_events("delivered", 1)[0]
    assert e["tls"]["policy"] == "mta-sts-testing" and e["tls"]["verified"] is False
    assert e["tls"]["failure"] in ("certificate-not-trusted", "certificate-host-mismatch")
    assert rpt(d, "sts-testing.test", "mta-sts-testing", e["tls"]["failure"]) == 1


def test_mta_sts_fetch_failure_is_opportunistic(pki, sink_factory, sluiced_factory):
    sink = sink_factory(addrs=[RCV])  # plaintext only
    d = sts_sluiced(sluiced_factory, pki)
    _, msg = message("a@acme.test", "b@sts-nofetch.test")
    send("a@acme.test", ["b@sts-nofetch.test"], msg)
    sink.wait_messages(1)
    e = d.wait_events("delivered", 1)[0]
    assert e["tls"] is None
    assert rpt(d, "sts-nofetch.test", "mta-sts", "sts-policy-fetch-error") == 1


def test_tls_counters_over_the_api(pki, sink_factory, sluiced_factory):
    sink_factory(addrs=[RCV], tls=pki["issue"]("mx.tls.test"))
    d = sluiced_factory(api=True, delivery={"verify_tls_domains": "[tls.test]",
                                            "tls_ca_file": f'"{pki["ca"]}"'}).start()
    _, msg = message("a@acme.test", "b@tls.test")
    send("a@acme.test", ["b@tls.test"], msg)
    d.wait_events("delivered", 1)
    st, body = d.api("GET", "/v1/tls")
    assert st == 200
    assert body == {"domains": [{"domain": "tls.test", "policy": "verify", "success": 1,
                                 "failure": 0, "failures": {}}]}
    env = dict(os.environ, SLUICE_API=d.api_url, SLUICE_TOKEN=d.admin_token)
    r = subprocess.run([str(SLUICECTL), "tls"], capture_output=True, text=True, env=env,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    assert "DOMAIN" in r.stdout and "tls.test" in r.stdout and "verify" in r.stdout


@pytest.mark.parametrize("domain,result", [("sts-invalid.test", "sts-policy-invalid"),
                                           ("sts-webpki.test", "sts-webpki-invalid")])
def test_mta_sts_bad_policy_is_opportunistic(pki, sts_server, sink_factory, sluiced_factory,
                                             domain, result):
    sink = sink_factory(addrs=[RCV])  # plaintext only: an enforced policy would defer
    d = sts_sluiced(sluiced_factory, pki)
    _, msg = message("a@acme.test", f"b@{domain}")
    send("a@acme.test", [f"b@{domain}"], msg)
    sink.wait_messages(1)
    assert d.wait_events("delivered", 1)[0]["tls"] is None
    assert rpt(d, domain, "mta-sts", result) == 1
