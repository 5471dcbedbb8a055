#!/usr/bin/python3
"""End-to-end benchmark: smtp-source (Postfix's load generator) injects N
messages of 4 KiB; measured side by side in one run:

  ceiling  smtp-source -> sluice-sink                  (no MTA at all)
  sluice   smtp-source -> sluiced (durable spool) -> sluice-sink

Reports messages/s accepted and delivered, sluiced's CPU seconds per 1000
messages and peak RSS, and the ratio to the ceiling. Runs inside the
network namespace that bench/run.sh sets up; writes
bench/results/<timestamp>/report.json and points bench/results/latest at it.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SINK_ADDR = "203.0.113.25"


def wait_port(host, port, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection((host, port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{host}:{port}")


def sink_count(stats):
    try:
        return json.loads(Path(stats).read_text()).get("messages", 0)
    except (OSError, ValueError):
        return 0


def start_sink(build, work, port):
    stats = work / f"sink-{port}.json"
    p = subprocess.Popen([str(build / "sluice-sink"), "-q", "-l", f"{SINK_ADDR}:{port}",
                          "--stats", str(stats)], stderr=subprocess.DEVNULL)
    wait_port(SINK_ADDR, port)
    return p, stats


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()


def smtp_source(target, n, sessions):
    t0 = time.time()
    subprocess.run(["smtp-source", "-c", "-d", "-l", "4096", "-m", str(n), "-s", str(sessions),
                    "-f", "bench@acme.test", "-t", "user@bench.test", target],
                   check=True, stdout=subprocess.DEVNULL)
    return time.time() - t0


def proc_usage(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / tck
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                rss = int(line.split()[1]) / 1024
    return cpu, rss


def wait_delivered(stats, n, timeout):
    end = time.time() + timeout
    while time.time() < end and sink_count(stats) < n:
        time.sleep(0.02)
    return time.time(), sink_count(stats)


def run_ceiling(build, work, n, sessions):
    p, stats = start_sink(build, work, 2601)
    dt = smtp_source(f"{SINK_ADDR}:2601", n, sessions)
    got = sink_count(stats)
    stop(p)
    return {"accepted_per_s": n / dt, "delivered_per_s": n / dt, "messages": got}


def run_sluice(build, work, n, sessions):
    p, stats = start_sink(build, work, 2602)
    conf = work / "sluice.yaml"
    conf.write_text(f"""hostname: bench.test
listeners:
  - name: submission
    address: 127.0.0.1:2525
    relay_networks: [127.0.0.0/8]
    relay_tenant: bench
tenants:
  - name: bench
pools:
  - name: default
    ips:
      - address: 198.51.100.10
        ehlo: mta1.bench.test
      - address: 198.51.100.11
        ehlo: mta2.bench.test
routes:
  - domain: "*"
    host: {SINK_ADDR}
    port: 2602
delivery:
  max_connections_per_domain: 32
  max_messages_per_connection: 1000
spool:
  path: {work / 'spool'}
events:
  path: {work / 'events.jsonl'}
metrics:
  address: 127.0.0.1:9025
""")
    d = subprocess.Popen([str(build / "sluiced"), "-c", str(conf)],
                         stderr=open(work / "sluiced.err", "w"))
    wait_port("127.0.0.1", 2525)
    cpu0, _ = proc_usage(d.pid)
    t0 = time.time()
    dt = smtp_source("127.0.0.1:2525", n, sessions)
    t_end, got = wait_delivered(stats, n, 120)
    cpu1, rss = proc_usage(d.pid)
    stop(d)
    stop(p)
    return {"accepted_per_s": n / dt, "delivered_per_s": got / (t_end - t0),
            "messages": got, "cpu_s_per_1k": (cpu1 - cpu0) / max(got, 1) * 1000,
            "rss_mb": rss}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", type=Path, default=ROOT / "build")
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--sessions", type=int, default=20)
    a = ap.parse_args()
    if not shutil.which("smtp-source"):
        raise SystemExit("bench: smtp-source not found (apt-get install postfix)")
    work = Path(tempfile.mkdtemp(prefix="sluice-bench."))
    systems = {"ceiling": run_ceiling(a.build, work, a.messages, a.sessions),
               "sluice-uring": run_sluice(a.build, work, a.messages, a.sessions)}
    ceil = systems["ceiling"]["delivered_per_s"]
    for s in systems.values():
        s["ratio_ceiling"] = s["delivered_per_s"] / ceil
    report = {"scenario": "e2e-4k", "messages": a.messages, "sessions": a.sessions,
              "systems": systems}
    out = ROOT / "bench/results" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    latest = ROOT / "bench/results/latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(out.name)
    print(f"\n{'system':14}{'accepted/s':>12}{'delivered/s':>13}{'cpu s/1k':>10}"
          f"{'rss MB':>8}{'x ceiling':>11}")
    for name, s in systems.items():
        print(f"{name:14}{s['accepted_per_s']:12.0f}{s['delivered_per_s']:13.0f}"
              f"{s.get('cpu_s_per_1k', 0):10.3f}{s.get('rss_mb', 0):8.1f}"
              f"{s['ratio_ceiling']:11.2f}")
    print(f"\nreport: {out / 'report.json'}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
