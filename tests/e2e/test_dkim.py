"""DKIM end to end: `sluicectl dkim keygen` + `sluicectl dkim sign`, checked
by an independent verifier (python3-dkim, Debian package python3-dkim) with
the TXT records keygen printed served from memory -- no network needed, so
this runs unchanged inside tests/netns.sh."""
import subprocess

import pytest

from conftest import SLUICECTL

dkim = pytest.importorskip("dkim")

DOMAIN = "example.com"

FOLDED = (b"From: =?utf-8?q?Z=C3=BCrich?= Team\r\n"
          b"  <team@example.com>\r\n"
          b"To: a@example.net,\r\n"
          b"\tb@example.net\r\n"
          b"Subject:   a  folded\r\n"
          b"   subject   line   \r\n"
          b"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
          b"Message-ID: <folded@example.com>\r\n"
          b"MIME-Version: 1.0\r\n"
          b"Content-Type: text/plain; charset=utf-8\r\n"
          b"Content-Transfer-Encoding: 8bit\r\n"
          b"List-Unsubscribe: <https://example.com/u/1>\r\n"
          b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
          b"X-Unsigned: whatever\r\n"
          b"\r\n"
          + "Grüße aus Zürich  \t \r\n".encode()
          + b"\r\n  indented\tline with \t tabs\r\n"
          + bytes(range(0x80, 0x100)) + b"\r\n"
          + b"\r\n\r\n\r\n")

PLAIN = (b"From: a@example.com\r\nTo: b@example.net\r\nSubject: hi\r\n"
         b"\r\nbody\r\n")
EMPTY_BODY = b"From: a@example.com\r\nSubject: nothing\r\n\r\n"
NO_BODY = b"From: a@example.com\r\nSubject: no separator\r\n"


def run(*args, stdin=b"", check=True):
    p = subprocess.run([str(SLUICECTL), "dkim", *args], input=stdin,
                       capture_output=True, timeout=30)
    if check and p.returncode != 0:
        raise AssertionError(f"sluicectl dkim {args}: rc={p.returncode} "
                             f"{p.stderr.decode(errors='replace')}")
    return p


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("dkim")
    recs, paths = {}, {}
    for algo, sel in (("rsa-sha256", "rsa1"), ("ed25519-sha256", "ed1")):
        path = d / f"{sel}.pem"
        out = run("keygen", "--algo", algo, "--out", str(path)).stdout
        rec = out.strip()
        k = b"rsa" if algo.startswith("rsa") else b"ed25519"
        assert rec.startswith(b"v=DKIM1; k=" + k + b"; p=")
        assert (path.stat().st_mode & 0o777) == 0o600
        recs[f"{sel}._domainkey.{DOMAIN}."] = rec
        paths[sel] = str(path)
    return paths, recs


def verify(msg, recs, idx=0):
    def dnsfunc(name, timeout=5):
        name = name.decode()
        return recs.get(name if name.endswith(".") else name + ".")
    try:
        return dkim.DKIM(msg).verify(idx=idx, dnsfunc=dnsfunc)
    except dkim.ValidationError:  # e.g. "body hash mismatch"
        return False


def sign(paths, msg, sels=("rsa1",), canon=None):
    args = ["sign", "--domain", DOMAIN, "--selector", sels[0],
            "--key", paths[sels[0]]]
    if len(sels) > 1:
        args += ["--key2", paths[sels[1]], "--selector2", sels[1]]
    if canon:
        args += ["--canon", canon]
    return run(*args, stdin=msg).stdout


@pytest.mark.parametrize("sel", ["rsa1", "ed1"])
@pytest.mark.parametrize("msg", [FOLDED, PLAIN, EMPTY_BODY, NO_BODY],
                         ids=["folded-8bit-trailing", "plain", "empty-body",
                              "no-body"])
def test_sign_verifies(keys, sel, msg):
    paths, recs = keys
    out = sign(paths, msg, (sel,))
    assert out.startswith(b"DKIM-Signature: v=1; a=")
    assert out.endswith(msg)
    assert verify(out, recs)


@pytest.mark.parametrize("canon", ["relaxed/relaxed", "simple/simple",
                                   "relaxed/simple", "simple/relaxed"])
def test_dual_signing_all_canons(keys, canon):
    paths, recs = keys
    out = sign(paths, FOLDED, ("rsa1", "ed1"), canon)
    assert out.count(b"DKIM-Signature:") == 2
    assert b"a=rsa-sha256;" in out and b"a=ed25519-sha256;" in out
    assert f"c={canon};".encode() in out
    assert verify(out, recs, 0) and verify(out, recs, 1)


def test_header_set_and_oversigned_from(keys):
    paths, recs = keys
    out = sign(paths, FOLDED, ("ed1",))
    sig = out[:out.index(b"From:")]
    h = b"".join(sig.split(b"\r\n\t")).split(b"h=")[1].split(b";")[0]
    assert h.split(b":") == [b"from", b"to", b"subject", b"date", b"message-id",
                             b"mime-version", b"content-type",
                             b"content-transfer-encoding", b"list-unsubscribe",
                             b"list-unsubscribe-post", b"from"]
    # a second From added after signing breaks the signature
    i = out.index(b"\r\n\r\n")
    forged = out[:i] + b"\r\nFrom: mallory@evil.example" + out[i:]
    assert not verify(forged, recs)
    # and so does a changed body
    assert not verify(out.replace("Grüße".encode(), b"Hallo"), recs)


def test_bare_lf_input_signs_its_crlf_form(keys):
    """Bare-LF input is signed as the CRLF form it takes on the wire."""
    paths, recs = keys
    msg = FOLDED.replace(b"\r\n", b"\n")
    out = sign(paths, msg, ("rsa1", "ed1"))
    wire = out.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert verify(wire, recs, 0) and verify(wire, recs, 1)


def test_errors(keys, tmp_path):
    paths, _ = keys
    p = run("sign", "--domain", DOMAIN, "--selector", "s", "--key",
            paths["rsa1"], stdin=b"Subject: no from\r\n\r\nx\r\n", check=False)
    assert p.returncode == 1 and b"From" in p.stderr
    p = run("sign", "--domain", DOMAIN, "--selector", "s", "--key",
            paths["ed1"], "--algo", "rsa-sha256", stdin=PLAIN, check=False)
    assert p.returncode == 1 and b"not a usable" in p.stderr
    p = run("sign", "--domain", DOMAIN, "--selector", "s", "--key",
            str(tmp_path / "missing.pem"), stdin=PLAIN, check=False)
    assert p.returncode == 1 and b"missing.pem" in p.stderr
    p = run("keygen", "--algo", "dsa", "--out", str(tmp_path / "k"), check=False)
    assert p.returncode == 2 and b"unknown algorithm" in p.stderr
    p = run("keygen", "--algo", "ed25519", "--out", paths["ed1"], check=False)
    assert p.returncode == 1 and b"overwrite" in p.stderr
    p = run("sign", "--domain", DOMAIN, check=False)
    assert p.returncode == 2 and b"usage" in p.stderr
    p = run("--help")
    assert b"keygen" in p.stdout and b"sign" in p.stdout
