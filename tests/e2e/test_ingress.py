"""The submission listener: STARTTLS, AUTH, pipelining, limits, malformed
input, SMTP smuggling and relay control, over real sockets."""
import socket
import ssl
import smtplib
import subprocess

import pytest

from conftest import SLUICECTL, message


@pytest.fixture
def acme_hash():
    out = subprocess.run([str(SLUICECTL), "passwd", "s3cret-pw"], check=True,
                         capture_output=True, text=True).stdout.strip()
    assert out.startswith("$pbkdf2-sha256$")
    return out


@pytest.fixture
def tls_daemon(sink_factory, sluiced_factory, certs, acme_hash):
    sink = sink_factory(tls=certs)
    d = sluiced_factory(tls=certs, relay=(), tenants=[
        {"name": "acme", "username": "acme", "password_hash": acme_hash, "stream": "marketing"}])
    d.start()
    return sink, d


def client_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Raw:
    """A line-level SMTP client for what smtplib will not send."""

    def __init__(self, port=2525, src=None):
        self.s = socket.socket()
        if src:
            self.s.bind((src, 0))
        self.s.settimeout(10)
        self.s.connect(("127.0.0.1" if not src else "127.0.0.1", port))
        self.buf = b""
        self.banner = self.reply()

    def send(self, data):
        self.s.sendall(data if isinstance(data, bytes) else data.encode())

    def reply(self):
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                d = self.s.recv(65536)
                if not d:
                    raise ConnectionError("closed: " + repr(self.buf))
                self.buf += d
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode())
            if len(line) < 4 or line[3:4] != b"-":
                return lines

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def close(self):
        self.s.close()


def test_starttls_auth_both_ways(tls_daemon):
    sink, d = tls_daemon
    mid, msg = message("news@acme.test", "u@gmail.test")
    with smtplib.SMTP("127.0.0.1", 2525, timeout=10) as c:
        c.ehlo("client.test")
        assert c.has_extn("starttls") and not c.has_extn("auth")
        c.starttls(context=client_ctx())
        c.ehlo("client.test")
        assert "PLAIN" in c.esmtp_features["auth"]
        c.login("acme", "s3cret-pw")
        assert c.sendmail("news@acme.test", ["u@gmail.test"], msg) == {}
    got = sink.wait_messages(1)[0]
    assert got["message_id"] == mid and got["tls"] is True
    ev = d.wait_events("delivered", 1)[0]
    assert ev["tenant"] == "acme" and ev["stream"] == "marketing"
    eml = sorted(sink.save.glob("*.eml"))[0].read_text()
    assert "with ESMTPSA" in eml and "TLSv1." in eml


def test_auth_login_and_bad_password(tls_daemon):
    with smtplib.SMTP("127.0.0.1", 2525, timeout=10) as c:
        c.starttls(context=client_ctx())
        c.ehlo("client.test")
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            c.login("acme", "wrong")
        assert e.value.smtp_code == 535
        c.user, c.password = "acme", "s3cret-pw"
        code, _ = c.auth("LOGIN", c.auth_login, initial_response_ok=False)
        assert code == 235


def test_auth_refused_before_tls_and_no_relay(tls_daemon):
    r = Raw()
    r.cmd("EHLO client.test")
    assert r.cmd("AUTH PLAIN AGFjbWUAczNjcmV0LXB3")[0].startswith("538 5.7.11")
    # Not authenticated and not in relay_networks: never an open relay.
    assert r.cmd("MAIL FROM:<a@acme.test>")[0].startswith("530 5.7.0")
    r.close()


def test_relay_only_from_listed_networks(sink_factory, sluiced_factory):
    sink_factory()
    d = sluiced_factory(relay=("198.51.100.12/32",))
    d.start()
    ok = Raw(src="198.51.100.12")
    ok.cmd("EHLO c.test")
    assert ok.cmd("MAIL FROM:<a@acme.test>")[0].startswith("250")
    ok.close()
    other = Raw(src="198.51.100.99")
    other.cmd("EHLO c.test")
    assert other.cmd("MAIL FROM:<a@acme.test>")[0].startswith("530")
    assert other.cmd("RCPT TO:<victim@gmail.test>")[0][0] in "45"
    other.close()


def test_pipelining_in_one_write(sink_factory, sluiced_factory):
    sink = sink_factory()
    sluiced_factory().start()
    r = Raw()
    ehlo = r.cmd("EHLO client.test")
    assert any("PIPELINING" in l for l in ehlo)
    mids = []
    batch = ""
    for i in range(3):
        mid, msg = message("a@acme.test", f"u{i}@gmail.test")
        mids.append(mid)
        batch += f"MAIL FROM:<a@acme.test>\r\nRCPT TO:<u{i}@gmail.test>\r\nDATA\r\n"
        batch += msg.replace("\r\n.", "\r\n..") + "\r\n.\r\n"
    r.send(batch + "QUIT\r\n")
    replies = [r.reply()[0] for _ in range(3 * 4 + 1)]
    codes = [x[:3] for x in replies]
    assert codes == ["250", "250", "354", "250"] * 3 + ["221"], replies
    got = sink.wait_messages(3)
    assert {m["message_id"] for m in got} == set(mids)


def test_limits_and_malformed_input(sink_factory, sluiced_factory):
    sink_factory()
    sluiced_factory(limits={"max_recipients": 2, "max_message_size": "8k",
                            "max_errors": 5}).start()
    r = Raw()
    ehlo = r.cmd("EHLO client.test")
    assert any(l.endswith("SIZE 8192") for l in ehlo)
    assert r.cmd("X" * 2000)[0].startswith("500 5.5.2")
    assert r.cmd("MAIL FROM:<a@acme.test> SIZE=100000")[0].startswith("552 5.3.4")
    assert r.cmd("MAIL FROM:<a@acme.test> FOO=bar")[0].startswith("555")
    assert r.cmd("MAIL FROM:<a@acme.test>")[0].startswith("250")
    assert r.cmd("RCPT TO:<a@gmail.test>")[0].startswith("250")
    assert r.cmd("RCPT TO:<b@gmail.test>")[0].startswith("250")
    assert r.cmd("RCPT TO:<c@gmail.test>")[0].startswith("452 4.5.3")
    assert r.cmd("DATA")[0].startswith("354")
    r.send(("y" * 70 + "\r\n") * 200 + ".\r\n")
    assert r.reply()[0].startswith("552 5.3.4")
    assert r.cmd("RSET")[0].startswith("250")
    assert r.cmd("NOOP")[0].startswith("250")
    r.close()


def test_too_many_errors_disconnects(sink_factory, sluiced_factory):
    sluiced_factory(limits={"max_errors": 3}).start()
    r = Raw()
    assert r.cmd("BOGUS")[0].startswith("500 5.5.2")
    assert r.cmd("BOGUS")[0].startswith("500 5.5.2")
    # The third error reply is followed by 421 and the connection closes.
    assert r.cmd("BOGUS")[0].startswith("500 5.5.2")
    assert r.reply()[0].startswith("421 4.7.0")
    with pytest.raises((ConnectionError, OSError)):
        r.cmd("NOOP")


@pytest.mark.parametrize("smuggle", ["\n.\n", "\r\n.\n", "\n.\r\n", "\r.\r"])
def test_smtp_smuggling_rejected(sink_factory, sluiced_factory, smuggle):
    sink = sink_factory()
    sluiced_factory().start()
    r = Raw()
    r.cmd("EHLO client.test")
    r.cmd("MAIL FROM:<a@acme.test>")
    r.cmd("RCPT TO:<a@gmail.test>")
    assert r.cmd("DATA")[0].startswith("354")
    # A smuggled second message after a non-standard end of data.
    r.send("Subject: first\r\n\r\nbody" + smuggle +
           "MAIL FROM:<evil@acme.test>\r\nRCPT TO:<v@gmail.test>\r\nDATA\r\n"
           "Subject: smuggled\r\n\r\nx\r\n.\r\n")
    rep = r.reply()[0]
    assert rep.startswith("550 5.5.2"), rep
    assert r.cmd("QUIT")[0].startswith("221")
    import time
    time.sleep(1)
    assert sink.messages() == []


def test_bare_lf_command_rejected(sluiced_factory):
    sluiced_factory().start()
    r = Raw()
    r.send("EHLO client.test\n")
    assert r.reply()[0].startswith("500 5.5.2")
    r.close()
