"""The benchmark harness end to end on the `tiny` scenario: a few hundred
messages through the ceiling and sluiced (Postfix is left to `make bench`:
starting it would make this test slow and depend on the postfix package),
then report.json must parse and keep its stable shape. No timing
assertions: the numbers only have to be there."""
import json
import shutil
import subprocess
import sys

import pytest

from conftest import BUILD, ROOT

KEYS = {"accepted_per_s", "delivered_per_s", "p50_ms", "p99_ms", "cpu_s_per_1k",
        "rss_mb", "ratio_postfix", "ratio_ceiling"}


@pytest.mark.skipif(not shutil.which("smtp-source"), reason="smtp-source (postfix) not installed")
def test_tiny_scenario_report(tmp_path):
    pytest.importorskip("yaml")
    r = subprocess.run([sys.executable, str(ROOT / "bench/sluice_bench.py"), "tiny",
                        "--build", str(BUILD), "--systems", "ceiling,sluice-uring",
                        "--results", str(tmp_path), "--no-plots"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    latest = tmp_path / "latest"
    assert latest.is_symlink()
    report = json.loads((latest / "report.json").read_text())
    assert report["scenario"] == "tiny"
    # The stable shape: every system is there; those not run say why.
    assert set(report["systems"]) == {"ceiling", "sluice-uring", "sluice-dpdk", "postfix"}
    for name in ("sluice-dpdk", "postfix"):
        s = report["systems"][name]
        assert s["skipped"] and KEYS <= set(s) and s["delivered_per_s"] is None, name
    ran = {n: s for n, s in report["systems"].items() if "skipped" not in s}
    assert set(ran) == {"ceiling", "sluice-uring"}
    for name, s in ran.items():
        assert KEYS <= set(s), name
        assert s["complete"], name
        assert s["delivered"] == s["messages"] + s["probes_sent"], name
        assert s["delivered_per_s"] > 0 and s["accepted_per_s"] > 0, name
        assert s["cpu_s_per_1k"] >= 0 and s["rss_mb"] > 0, name
        assert s["probes_delivered"] == s["probes_sent"] > 0, name
        assert s["p50_ms"] is not None and s["p99_ms"] >= s["p50_ms"], name
        assert s["ratio_postfix"] is None, name
    assert report["systems"]["ceiling"]["ratio_ceiling"] == 1.0
    assert "| sluice-uring |" in (latest / "report.md").read_text()


def run_bench(tmp_path, scenario, systems):
    r = subprocess.run([sys.executable, str(ROOT / "bench/sluice_bench.py"), scenario,
                        "--build", str(BUILD), "--systems", systems,
                        "--results", str(tmp_path), "--no-plots"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads((tmp_path / "latest" / "report.json").read_text())


@pytest.mark.skipif(not shutil.which("smtp-source"), reason="smtp-source (postfix) not installed")
def test_provider_emulation_over_http(tmp_path):
    """Provider-aware path: unbound + MX-named routes, sink provider rules
    (unknown users, per-IP deferral, STARTTLS), HTTP injection as a tenant
    made through the API. Every message is delivered or bounced, and the
    unknown users (and only they) bounce."""
    pytest.importorskip("yaml")
    report = run_bench(tmp_path, "tiny-providers", "ceiling,sluice-uring")
    s = report["systems"]["sluice-uring"]
    assert s["complete"] and s["inject"] == "http"
    assert s["delivered"] + s["bounced"] == s["injected"] == 300
    pp = s["per_provider"]
    assert set(pp) == {"google", "yahoo"}
    assert all(c["bounced"] > 0 for c in pp.values()), pp
    assert s["p99_ms"] is not None
    assert report["systems"]["ceiling"]["inject"] == "smtp"


@pytest.mark.skipif(not shutil.which("smtp-source"), reason="smtp-source (postfix) not installed")
def test_concurrency_section(tmp_path):
    pytest.importorskip("yaml")
    report = run_bench(tmp_path, "tiny-concurrency", "sluice-uring")
    c = report["concurrency"]
    assert report["systems"]["sluice-uring"]["complete"]
    assert 0 < c["peak_connections"] <= 200
    assert c["bytes_per_connection"] is not None
    assert report["systems"]["postfix"]["skipped"]
