"""Abuse signals: outbound link checking at acceptance (a local blocklist
refusing over SMTP and HTTP, a DNS URI blocklist holding the tenant) and the
DNSBL self-check of the source IPs (a listed IP is paused, the others carry
the mail). The lists live in tests/dns.conf.in (uribl.test, dnsbl.test)."""
import signal
import smtplib
import subprocess

import pytest

from conftest import SLUICECTL, message, wait_until


def link_check(tmp_path, action="reject", blocklist="evil.test\n", zones=None):
    s = f"link_check:\n  action: {action}\n"
    if blocklist is not None:
        (tmp_path / "links.txt").write_text("# test blocklist\n" + blocklist)
        s += f"  blocklist: \"{tmp_path / 'links.txt'}\"\n"
    if zones:
        s += f"  uribl_zones: [{', '.join(zones)}]\n  dns_timeout: 3s\n"
    return s


def qp_body(frm, to, msgid):
    # The link is split by a quoted-printable soft line break.
    return (f"From: <{frm}>\r\nTo: <{to}>\r\nSubject: offer\r\nMessage-ID: {msgid}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            "Click http://user@WWW.ev=\r\nil.test:8080/win now=21\r\n")


def test_local_blocklist_rejects_smtp(tmp_path, sink_factory, sluiced_factory):
    sink = sink_factory()
    d = sluiced_factory(api=True, extra=link_check(tmp_path)).start()
    with smtplib.SMTP("127.0.0.1", 2525, timeout=20) as c:
        with pytest.raises(smtplib.SMTPDataError) as ei:
            c.sendmail("a@acme.test", ["u1@gmail.test"],
                       qp_body("a@acme.test", "u1@gmail.test", "<bad1@acme.test>"))
        assert ei.value.smtp_code == 550
        text = ei.value.smtp_error.decode()
        assert "5.7.1" in text and "www.evil.test" in text and "local blocklist" in text
        # the session goes on: a clean message is accepted
        _, body = message("a@acme.test", "u2@gmail.test")
        assert c.sendmail("a@acme.test", ["u2@gmail.test"], body + "see https://good.test/\r\n") == {}
    sink.wait_messages(1)
    assert [m["rcpts"] for m in sink.messages()] == [["u2@gmail.test"]]
    ev = d.wait_events("link_listed")[0]
    assert ev["tenant"] == "local" and ev["message_id"] == "<bad1@acme.test>"
    assert "www.evil.test" in ev["response"]
    err = (d.dir / "sluiced.err").read_text()
    assert "link check: tenant local:" in err and "<bad1@acme.test>" in err
    st, r = d.api("GET", "/v1/audit?tenant=local")
    a = [x for x in r["items"] if x["action"] == "link.listed"]
    assert a and a[0]["actor"] == "link_check" and "www.evil.test" in a[0]["details"], r
    assert 'sluice_link_hits_total{list="local blocklist",action="reject"} 1' in d.metrics()
    # SIGHUP reloads the blocklist
    (tmp_path / "links.txt").write_text("evil.test\nother.test\n")
    d.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "reload: link blocklist" in (d.dir / "sluiced.err").read_text(), 10,
               "blocklist reloaded")
    with smtplib.SMTP("127.0.0.1", 2525, timeout=20) as c:
        _, body = message("a@acme.test", "u3@gmail.test")
        with pytest.raises(smtplib.SMTPDataError) as ei:
            c.sendmail("a@acme.test", ["u3@gmail.test"], body + "www.Other.test/x\r\n")
        assert ei.value.smtp_code == 550 and b"www.other.test" in ei.value.smtp_error


def test_local_blocklist_rejects_http(tmp_path, sink_factory, sluiced_factory):
    sink = sink_factory()
    d = sluiced_factory(api=True, extra=link_check(tmp_path)).start()
    st, r = d.api("POST", "/v1/messages?tenant=local", {"messages": [
        {"from": "a@acme.test", "to": ["u1@gmail.test"], "text": "hello",
         "html": "<p><a HREF=\"https://shop.Evil.Test/x\">deal</a></p>"},
        {"from": "a@acme.test", "to": ["u2@gmail.test"], "text": "fine https://good.test/"},
    ]})
    assert st == 200, r
    assert r["accepted"] == 1 and r["rejected"] == 1, r
    bad, good = r["messages"]
    assert bad["status"] == "rejected"
    assert "shop.evil.test" in bad["reason"] and "local blocklist" in bad["reason"]
    assert good["status"] == "accepted"
    sink.wait_messages(1)
    assert [m["rcpts"] for m in sink.messages()] == [["u2@gmail.test"]]
    assert d.wait_events("link_listed")[0]["tenant"] == "local"


def test_uribl_hit_holds_tenant(tmp_path, sink_factory, sluiced_factory):
    sink = sink_factory()
    d = sluiced_factory(api=True, tenants=[{"name": "t1"}, {"name": "t2"}],
                        extra=link_check(tmp_path, action="hold", blocklist=None,
                                         zones=["uribl.test"])).start()
    for t in ("t1", "t2"):
        d.api("POST", f"/v1/tenants/{t}/approve", {"reason": "test"})
    # a refused query (127.255.255.x) is not a listing
    st, r = d.api("POST", "/v1/messages?tenant=t2", {"messages": [
        {"from": "n@t2.test", "to": ["a@gmail.test"], "text": "see http://www.refused.test/"}]})
    assert st == 200 and r["accepted"] == 1, r
    st, r = d.api("POST", "/v1/messages?tenant=t1", {"messages": [
        {"from": "n@t1.test", "to": ["b@gmail.test"],
         "text": "win at http://promo.URIBL-evil.test/?x=1"}]})
    assert st == 200 and r["accepted"] == 1, r  # hold accepts the message
    held_id = r["messages"][0]["id"]
    wait_until(lambda: d.api("GET", "/v1/tenants/t1")[1]["state"] == "on_hold", 30, "t1 held")
    st, r = d.api("POST", "/v1/messages?tenant=t2", {"messages": [
        {"from": "n@t2.test", "to": ["c@gmail.test"], "text": "plain"}]})
    assert st == 200 and r["accepted"] == 1, r
    sink.wait_messages(2)
    assert sorted(m["rcpts"][0] for m in sink.messages()) == ["a@gmail.test", "c@gmail.test"]
    ev = d.wait_events("link_listed")[0]
    assert ev["tenant"] == "t1" and ev["id"] == held_id and "uribl.test" in ev["response"]
    assert not [e for e in d.events("delivered") if e["tenant"] == "t1"]
    st, r = d.api("GET", "/v1/audit?tenant=t1")
    acts = {x["action"] for x in r["items"] if x["actor"] == "link_check"}
    assert {"link.listed", "tenant.state"} <= acts, r
    assert 'sluice_link_hits_total{list="uribl.test",action="hold"} 1' in d.metrics()


def ips(d):
    st, r = d.api("GET", "/v1/ips")
    assert st == 200, r
    return {x["ip"]: x for x in r["items"]}


def test_dnsbl_listed_ip_paused(tmp_path, sink_factory, sluiced_factory):
    sink = sink_factory()
    d = sluiced_factory(api=True,
                        extra="dnsbl:\n  zones: [dnsbl.test]\n  interval: 1s\n").start()
    wait_until(lambda: ips(d)["198.51.100.11"]["dnsbl"] == "listed", 30, ".11 listed")
    x = ips(d)
    assert x["198.51.100.11"]["dnsbl_zones"] == "dnsbl.test" and x["198.51.100.11"]["paused"]
    assert x["198.51.100.10"]["dnsbl"] == "clean" and not x["198.51.100.10"]["paused"]
    n = 12
    with smtplib.SMTP("127.0.0.1", 2525, timeout=20) as c:
        for i in range(n):
            _, body = message("a@acme.test", f"u{i}@gmail.test")
            c.sendmail("a@acme.test", [f"u{i}@gmail.test"], body)
    sink.wait_messages(n)
    srcs = {m["src"].rsplit(":", 1)[0] for m in sink.messages()}
    assert "198.51.100.11" not in srcs and srcs, srcs
    ev = d.wait_events("ip_blocklisted")[0]
    assert ev["source_ip"] == "198.51.100.11"
    assert 'sluice_ip_blocklisted{ip="198.51.100.11",zone="dnsbl.test"} 1' in d.metrics()
    assert "dnsbl: source IP 198.51.100.11 is listed in dnsbl.test" in \
        (d.dir / "sluiced.err").read_text()
    out = subprocess.run([str(SLUICECTL), "ip", "list", "--api", d.api_url, "--token",
                          d.admin_token], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    row = [l for l in out.stdout.splitlines() if "198.51.100.11" in l][0]
    assert "dnsbl.test" in row


class ToggleDNS:
    """A DNS server on 127.0.0.1:5354 for the delisting test: A queries for
    `name` answer 127.0.0.2 (TTL 0) while `listed`, NXDOMAIN (SOA minimum
    0, so nothing is cached) otherwise; every other query is relayed to the
    namespace's unbound."""

    def __init__(self, name, port=5354):
        import socket
        import threading
        self.name = name.lower().rstrip(".")
        self.listed = True
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(0.2)
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    @staticmethod
    def qname(q):
        labels, i = [], 12
        while i < len(q) and q[i]:
            labels.append(q[i + 1:i + 1 + q[i]].decode("ascii", "replace"))
            i += 1 + q[i]
        return ".".join(labels).lower(), i + 1

    def answer(self, q):
        import struct
        name, end = self.qname(q)
        qtype = struct.unpack("!H", q[end:end + 2])[0]
        question = q[12:end + 4]
        if self.listed:
            an = (b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 0, 4) + bytes([127, 0, 0, 2])
                  if qtype == 1 else b"")
            return q[:2] + struct.pack("!HHHHH", 0x8180, 1, 1 if an else 0, 0, 0) + question + an
        zone = b"".join(bytes([len(l)]) + l.encode() for l in ["toggle", "test"]) + b"\x00"
        soa = zone + b"\x00\x00" + struct.pack("!IIIII", 1, 0, 0, 0, 0)
        ns = zone + struct.pack("!HHIH", 6, 1, 0, len(soa)) + soa
        return q[:2] + struct.pack("!HHHHH", 0x8183, 1, 0, 1, 0) + question + ns

    def serve(self):
        import socket
        while self.running:
            try:
                q, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            name, _ = self.qname(q)
            if name == self.name:
                self.sock.sendto(self.answer(q), peer)
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up:
                up.settimeout(2)
                up.sendto(q, ("198.51.100.53", 53))
                try:
                    self.sock.sendto(up.recvfrom(65535)[0], peer)
                except socket.timeout:
                    pass

    def stop(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()


def test_dnsbl_delisted_ip_resumes(tmp_path, sink_factory, sluiced_factory):
    dns = ToggleDNS("11.100.51.198.toggle.test")
    try:
        sink = sink_factory()
        d = sluiced_factory(api=True, dns=False, delivery={"max_messages_per_connection": 1},
                            extra="dns:\n  servers: [\"127.0.0.1:5354\"]\n"
                                  "dnsbl:\n  zones: [toggle.test]\n  interval: 500ms\n").start()
        wait_until(lambda: ips(d)["198.51.100.11"]["paused"], 30, ".11 paused")

        def send(first, n):
            with smtplib.SMTP("127.0.0.1", 2525, timeout=20) as c:
                for i in range(first, first + n):
                    _, body = message("a@acme.test", f"u{i}@gmail.test")
                    c.sendmail("a@acme.test", [f"u{i}@gmail.test"], body)

        send(0, 6)
        sink.wait_messages(6)
        assert {m["src"].rsplit(":", 1)[0] for m in sink.messages()} == {"198.51.100.10"}
        dns.listed = False
        wait_until(lambda: not ips(d)["198.51.100.11"]["paused"], 30, ".11 resumed")
        ev = d.wait_events("ip_delisted")[0]
        assert ev["source_ip"] == "198.51.100.11" and ev["site"] == "toggle.test"
        assert "no longer listed in toggle.test: resumed" in (d.dir / "sluiced.err").read_text()
        assert 'sluice_ip_blocklisted{ip="198.51.100.11",zone="toggle.test"} 0' in d.metrics()
        send(6, 6)
        sink.wait_messages(12)
        srcs = [m["src"].rsplit(":", 1)[0] for m in sink.messages()[6:]]
        assert "198.51.100.11" in srcs, srcs
    finally:
        dns.stop()
