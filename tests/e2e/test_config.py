"""sluiced -n checks a configuration and names the bad spot."""
import subprocess

from conftest import ROOT, SLUICED


def check(path):
    return subprocess.run([str(SLUICED), "-n", "-c", str(path)], capture_output=True, text=True)


def test_shipped_default_config_is_valid():
    r = check(ROOT / "configs/sluice.yaml")
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout


def test_unknown_key_reports_file_line_col(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("pools:\n  - name: p\n    ips:\n      - address: 198.51.100.10\n"
                 "        ehlo: a.test\nspool:\n  pathh: /tmp/x\n")
    r = check(p)
    assert r.returncode == 78
    assert f"{p}:7:3:" in r.stderr and "pathh" in r.stderr


def test_bad_duration(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("pools:\n  - name: p\n    ips:\n      - address: 198.51.100.10\n"
                 "        ehlo: a.test\ndelivery:\n  max_age: forever\n")
    r = check(p)
    assert r.returncode == 78 and f"{p}:7:12:" in r.stderr


def test_missing_file(tmp_path):
    r = check(tmp_path / "nope.yaml")
    assert r.returncode == 78 and "nope.yaml" in r.stderr
