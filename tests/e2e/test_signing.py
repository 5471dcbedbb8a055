"""Mail from a domain with DKIM keys is signed at acceptance (RSA and
Ed25519 dual-signed) and the receiver's copy verifies with an independent
verifier (python3-dkim); mail from other domains goes out unsigned."""
import smtplib
import subprocess

import dkim
import pytest

from conftest import SLUICECTL, message


def ctl(*args):
    return subprocess.run([str(SLUICECTL), *args], check=True, capture_output=True,
                          text=True).stdout


@pytest.fixture
def keys(tmp_path):
    out = {}
    for sel, algo in (("rsa2026", "rsa-sha256"), ("ed2026", "ed25519-sha256")):
        path = tmp_path / f"{sel}.pem"
        ctl("dkim", "keygen", "--algo", algo, "--out", str(path))
        txt = ctl("dkim", "dns", "--key", str(path)).strip()
        # The record may be printed as a zone line; keep the TXT value.
        value = txt[txt.index("v=DKIM1"):].strip().strip('"').replace('" "', "")
        out[sel] = (path, algo, value)
    return out


def test_dual_signed_at_acceptance_and_verifies(sink_factory, sluiced_factory, keys):
    sink = sink_factory()
    extra = "dkim:\n" + "".join(
        f"  - domain: acme.test\n    selector: {sel}\n    key: \"{p}\"\n    algorithm: {a}\n"
        for sel, (p, a, _) in keys.items())
    d = sluiced_factory(extra=extra).start()
    mid, msg = message("news@acme.test", "u@gmail.test",
                       extra_headers="Subject2: folded\r\n  continuation line\r\n")
    with smtplib.SMTP("127.0.0.1", 2525, timeout=10) as c:
        c.sendmail("news@acme.test", ["u@gmail.test"], msg)
    mid2, msg2 = message("news@other.test", "u@gmail.test")
    with smtplib.SMTP("127.0.0.1", 2525, timeout=10) as c:
        c.sendmail("news@other.test", ["u@gmail.test"], msg2)
    sink.wait_messages(2)
    emls = {}
    for p in sink.save.glob("*.eml"):
        b = p.read_bytes()
        emls[b"other.test" in b.split(b"\r\n\r\n")[0].split(b"From:")[1][:80]] = b
    signed, unsigned = emls[False], emls[True]
    assert signed.count(b"DKIM-Signature:") == 2
    assert b"DKIM-Signature:" not in unsigned

    def dnsfunc(name, timeout=5):
        sel = name.decode().split(".")[0]
        return keys[sel][2].encode()

    # python3-dkim verifies the first signature; check each by moving it first.
    head, body = signed.split(b"\r\n\r\n", 1)
    fields, cur = [], b""
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            cur += b"\r\n" + line
        else:
            if cur:
                fields.append(cur)
            cur = line
    fields.append(cur)
    sigs = [f for f in fields if f.lower().startswith(b"dkim-signature:")]
    rest = [f for f in fields if not f.lower().startswith(b"dkim-signature:")]
    for sig in sigs:
        one = b"\r\n".join([sig] + rest) + b"\r\n\r\n" + body
        assert dkim.verify(one, dnsfunc=dnsfunc), sig[:120]
    assert "sluice_dkim_signed_total 1" in d.metrics()
