#!/usr/bin/python3
"""sluice-bench: run one benchmark scenario side by side against

  ceiling       smtp-source -> sluice-sink                    (no MTA at all)
  sluice-uring  smtp-source -> sluiced (durable spool) -> sluice-sink
  postfix       smtp-source -> Debian's Postfix (durable queue) -> sluice-sink

one system after the other in the same run, and write
bench/results/<timestamp>/{report.json,report.md,*.png} (bench/results/latest
points at the newest). Must run inside the network namespace of
tests/netns.sh (bench/run.sh sets it up). How everything is measured:
docs/bench.md.
"""
import argparse
import json
import os
import random
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SINK_ADDR = "203.0.113.25"
SOURCE_IP = "198.51.100.10"
SLUICE_PORT = 2525
METRICS_PORT = 9025
POSTFIX_LISTEN = "127.0.0.1:2526"
SINK_PORTS = {"ceiling": 2601, "sluice-uring": 2602, "postfix": 2603}
ALL_SYSTEMS = ["ceiling", "sluice-uring", "postfix"]
COLORS = {"ceiling": "tab:gray", "sluice-uring": "tab:blue", "postfix": "tab:red"}
SENDER = "bench@acme.test"
TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- scenario

def parse_size(v):
    if isinstance(v, int):
        return v
    s = str(v).strip().lower()
    mult = {"k": 1024, "m": 1024 * 1024}.get(s[-1:], 1)
    return int(float(s[:-1] if mult > 1 else s) * mult)


def weights(v, key):
    """A scalar, a list (equal weights) or a {value: weight} map -> [(value, w)]."""
    if isinstance(v, dict):
        items = [(key(k), float(w)) for k, w in v.items()]
    elif isinstance(v, list):
        items = [(key(k), 1.0) for k in v]
    else:
        items = [(key(v), 1.0)]
    tot = sum(w for _, w in items)
    if tot <= 0:
        raise SystemExit("bench: weights must be positive")
    return [(k, w / tot) for k, w in items]


def load_scenario(name):
    p = Path(name)
    if not p.exists():
        p = ROOT / "bench/scenarios" / f"{name}.yaml"
    if not p.exists():
        avail = ", ".join(sorted(x.stem for x in (ROOT / "bench/scenarios").glob("*.yaml")))
        raise SystemExit(f"bench: no scenario '{name}' (available: {avail})")
    sc = yaml.safe_load(p.read_text())
    sc.setdefault("name", p.stem)
    sc["messages"] = int(sc["messages"])
    sc["sessions"] = int(sc.get("sessions", 20))
    if sc["messages"] <= 0 or sc["sessions"] <= 0:
        raise SystemExit("bench: messages and sessions must be positive")
    sc["sizes"] = weights(sc.get("size", 4096), parse_size)
    sc["domains"] = weights(sc.get("domains", ["example.test"]), str)
    sc.setdefault("systems", ALL_SYSTEMS)
    sc.setdefault("timeout", 300)
    sc.setdefault("stall", 20)
    pr = sc.setdefault("probes", {})
    pr.setdefault("count", 200)
    pr.setdefault("rate", 20)
    sink = sc.setdefault("sink", {})
    sink.setdefault("rules", "")
    sink.setdefault("threads", 1)
    sc.setdefault("sluice", {})
    return sc


def streams(sc):
    """Split the load into one smtp-source per (size, domain): smtp-source
    sends one fixed size to one recipient. Messages and sessions are shared
    out by weight; every stream gets at least one session."""
    out = []
    for size, ws in sc["sizes"]:
        for dom, wd in sc["domains"]:
            out.append({"size": size, "domain": dom, "w": ws * wd})
    left = sc["messages"]
    for i, s in enumerate(out):
        s["messages"] = left if i == len(out) - 1 else round(sc["messages"] * s["w"])
        left -= s["messages"]
        s["sessions"] = max(1, round(sc["sessions"] * s["w"]))
    return [s for s in out if s["messages"] > 0]


# ---------------------------------------------------------------- processes

def wait_port(host, port, timeout=15, proc=None):
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited ({proc.returncode}) before {host}:{port} listened")
        try:
            socket.create_connection((host, port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{host}:{port} not listening")


def stop(p, timeout=15):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


class Sink:
    def __init__(self, build, work, name, port, sc):
        self.dir = work / f"sink-{name}"
        self.dir.mkdir()
        self.log = self.dir / "sink.jsonl"
        self.stats = self.dir / "stats.json"
        args = [str(build / "sluice-sink"), "-q", "-l", f"{SINK_ADDR}:{port}", "-L", str(self.log),
                "--stats", str(self.stats), "-t", str(sc["sink"]["threads"]), "-n", "sink.test"]
        if sc["sink"]["rules"].strip():
            (self.dir / "rules").write_text(sc["sink"]["rules"])
            args += ["-r", str(self.dir / "rules")]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                     stderr=open(self.dir / "sink.err", "w"))
        wait_port(SINK_ADDR, port, proc=self.proc)
        self.addr = f"{SINK_ADDR}:{port}"

    def count(self):
        try:
            return json.loads(self.stats.read_text()).get("messages", 0)
        except (OSError, ValueError):
            return 0

    def records(self):
        out = []
        for line in self.log.read_text().splitlines() if self.log.exists() else []:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out


def pstat(pid):
    """(utime+stime, cutime+cstime) in seconds, VmRSS and VmHWM in MiB; None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fl = f.read().rsplit(")", 1)[1].split()
        rss = hwm = 0.0
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) / 1024
        return ((int(fl[11]) + int(fl[12])) / TCK, (int(fl[13]) + int(fl[14])) / TCK, rss, hwm)
    except (OSError, IndexError, ValueError):
        return None


def descendants(root):
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def pss(pid):
    """Proportional set size in MiB (shared pages divided among their users),
    so that summing it over many processes does not count libraries twice."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def tree_usage(root):
    """CPU seconds used so far by ROOT and all its descendants (live ones'
    own time plus the time of every child already reaped, which the kernel
    adds to the parent's cutime/cstime) and their summed PSS (MiB)."""
    cpu = mem = 0.0
    for i, pid in enumerate(descendants(root)):
        st = pstat(pid)
        if st:
            cpu += st[0] + (st[1] if i == 0 else 0.0)
            mem += pss(pid)
    return cpu, mem


class Sampler(threading.Thread):
    """Every 0.5 s: the summed PSS of the system's processes and its queue depth."""

    def __init__(self, root_pid, queue_fn):
        super().__init__(daemon=True)
        self.root, self.queue_fn = root_pid, queue_fn
        self.peak_rss = 0.0
        self.queue = []
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            if self.root:
                _, rss = tree_usage(self.root)
                self.peak_rss = max(self.peak_rss, rss)
            if self.queue_fn:
                q = self.queue_fn()
                if q is not None:
                    self.queue.append((time.time(), q))
            self.halt.wait(0.5)

    def finish(self):
        self.halt.set()
        self.join()


def sluice_queue():
    try:
        with socket.create_connection(("127.0.0.1", METRICS_PORT), timeout=0.5) as s:
            s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            data = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                data += b
    except OSError:
        return None
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("sluice_queue_messages"):
            return float(line.split()[-1])
    return None


# ---------------------------------------------------------------- load

def run_sources(target, sc):
    """All streams' smtp-source processes at once; returns (t_start, t_end)."""
    host, port = target.rsplit(":", 1)
    procs = []
    t0 = time.time()
    for i, st in enumerate(streams(sc)):
        procs.append(subprocess.Popen(
            ["smtp-source", "-d", "-l", str(st["size"]), "-m", str(st["messages"]),
             "-s", str(st["sessions"]), "-M", "client.bench.test", "-f", SENDER,
             "-t", f"user{i}@{st['domain']}", f"{host}:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    errs = []
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            errs.append(err.decode(errors="replace").strip())
    t1 = time.time()
    if errs:
        log("smtp-source: " + " | ".join(errs)[:500])
    return t0, t1, not errs


class Probe(threading.Thread):
    """Latency probes: up to COUNT messages with unique Message-IDs, injected
    at RATE per second over one SMTP connection while the load runs."""

    def __init__(self, target, sc, tag):
        super().__init__(daemon=True)
        self.host, port = target.rsplit(":", 1)
        self.port = int(port)
        self.count, self.rate = sc["probes"]["count"], sc["probes"]["rate"]
        self.size = sc["sizes"][0][0]
        self.domain = sc["domains"][0][0]
        self.tag = f"{tag}-{os.getpid()}-{random.randrange(1 << 30):x}"
        self.sent = {}
        self.errors = 0
        self.halt = threading.Event()

    def body(self, mid):
        hdr = (f"From: <{SENDER}>\r\nTo: <probe@{self.domain}>\r\nSubject: latency probe\r\n"
               f"Message-ID: {mid}\r\n\r\n")
        line = "x" * 76 + "\r\n"
        return hdr + line * max(1, (self.size - len(hdr)) // len(line))

    def run(self):
        conn = None
        nxt = time.time()
        for i in range(self.count):
            if self.halt.wait(max(0.0, nxt - time.time())):
                break
            nxt += 1.0 / self.rate
            mid = f"<probe.{i}.{self.tag}@bench.test>"
            try:
                if conn is None:
                    conn = smtplib.SMTP(self.host, self.port, "probe.bench.test", timeout=30)
                t = time.time()
                conn.sendmail(SENDER, [f"probe@{self.domain}"], self.body(mid))
                self.sent[mid] = t
            except (OSError, smtplib.SMTPException):
                self.errors += 1
                conn = None
        if conn is not None:
            try:
                conn.quit()
            except (OSError, smtplib.SMTPException):
                pass


def wait_delivery(sink, expected, timeout, stall):
    """Until the sink has EXPECTED messages, nothing arrived for STALL
    seconds, or TIMEOUT passed."""
    end = time.time() + timeout
    last, last_t = -1, time.time()
    while time.time() < end:
        n = sink.count()
        if n >= expected:
            return True
        if n != last:
            last, last_t = n, time.time()
        elif time.time() - last_t > stall:
            log(f"no progress for {stall}s at {n}/{expected} delivered")
            return False
        time.sleep(0.1)
    log(f"timeout at {sink.count()}/{expected} delivered")
    return False


# ---------------------------------------------------------------- systems

SLUICE_CONF = """hostname: sluice.bench.test
listeners:
  - name: submission
    address: 127.0.0.1:{port}
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
    host: {sink_host}
    port: {sink_port}
delivery:
  max_connections_per_domain: {conns}
  max_messages_per_connection: {per_conn}
  retry_schedule: [1s, 2s, 5s]
spool:
  path: {spool}
  sync: true
events:
  path: {events}
metrics:
  address: 127.0.0.1:{metrics}
"""


class SluiceSystem:
    name = "sluice-uring"
    target = f"127.0.0.1:{SLUICE_PORT}"

    def __init__(self, build, work, sink, sc):
        self.dir = work / "sluiced"
        self.dir.mkdir()
        conf = self.dir / "sluice.yaml"
        host, port = sink.addr.rsplit(":", 1)
        opts = sc["sluice"]
        conf.write_text(SLUICE_CONF.format(
            port=SLUICE_PORT, sink_host=host, sink_port=port, spool=self.dir / "spool",
            events=self.dir / "events.jsonl", metrics=METRICS_PORT,
            conns=opts.get("max_connections_per_domain", 32),
            per_conn=opts.get("max_messages_per_connection", 1000)))
        self.proc = subprocess.Popen([str(build / "sluiced"), "-c", str(conf)],
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(self.dir / "sluiced.err", "w"))
        wait_port("127.0.0.1", SLUICE_PORT, proc=self.proc)
        self.pid = self.proc.pid
        self.queue_fn = sluice_queue

    def usage(self):
        st = pstat(self.pid)
        return (st[0], st[3]) if st else (0.0, 0.0)

    def stop(self):
        stop(self.proc)


class PostfixSystem:
    name = "postfix"
    target = POSTFIX_LISTEN

    def __init__(self, build, work, sink, sc):
        self.dir = work / "postfix"
        self.etc = self.dir / "etc"
        self.etc.mkdir(parents=True)
        self.queue = self.dir / "queue"
        data = self.dir / "data"
        for d in (self.queue, data):
            d.mkdir()
        shutil.chown(data, "postfix")
        # The queue's parent must be owned by root, and walkable by postfix.
        os.chmod(work, 0o755)
        os.chmod(self.dir, 0o755)
        peers = ROOT / "bench/peers/postfix"
        subst = {"@QUEUE@": str(self.queue), "@DATA@": str(data),
                 "@LOG@": str(self.dir / "postfix.log"), "@RELAY@": f"[{SINK_ADDR}]:{sink.addr.rsplit(':', 1)[1]}",
                 "@SOURCE_IP@": SOURCE_IP, "@LISTEN@": POSTFIX_LISTEN}
        for f in ("main.cf", "master.cf"):
            text = (peers / f).read_text()
            for k, v in subst.items():
                text = text.replace(k, v)
            (self.etc / f).write_text(text)
        # Debian's postfix-script checks files listed under meta_directory.
        for f in ("dynamicmaps.cf", "postfix-files"):
            if Path("/etc/postfix", f).exists():
                shutil.copy(Path("/etc/postfix", f), self.etc / f)
        for d in ("dynamicmaps.cf.d", "postfix-files.d"):
            if Path("/etc/postfix", d).is_dir():
                shutil.copytree(Path("/etc/postfix", d), self.etc / d)
        self.postfix(["check"], quiet=True)
        self.postfix(["start"])
        host, port = POSTFIX_LISTEN.rsplit(":", 1)
        wait_port(host, int(port), timeout=20)
        self.pid = self.master_pid()
        self.queue_fn = self.queue_depth

    def postfix(self, args, quiet=False):
        r = subprocess.run(["/usr/sbin/postfix", "-c", str(self.etc)] + args,
                           capture_output=True, text=True)
        if r.returncode and not quiet:
            raise RuntimeError(f"postfix {' '.join(args)}: {r.stderr.strip()}")
        return r

    def master_pid(self):
        f = self.queue / "pid/master.pid"
        end = time.time() + 10
        while time.time() < end:
            try:
                return int(f.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                time.sleep(0.1)
        raise RuntimeError("postfix: no master.pid")

    def queue_depth(self):
        n = 0
        for sub in ("incoming", "active", "deferred", "maildrop"):
            for _, _, files in os.walk(self.queue / sub):
                n += len(files)
        return n

    def usage(self):
        cpu, _ = tree_usage(self.pid)
        return cpu, 0.0

    def stop(self):
        tree = descendants(self.pid)
        self.postfix(["stop"], quiet=True)
        end = time.time() + 10
        while time.time() < end and any(pstat(p) for p in tree):
            time.sleep(0.1)
        for p in tree:  # leftovers of this instance only
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass


def latency(sent, records):
    got = {r.get("message_id"): r["time"] for r in records if r.get("message_id") in sent}
    lat = sorted((got[m] - t) * 1000 for m, t in sent.items() if m in got)
    if not lat:
        return None, None, 0

    def pct(p):
        return lat[min(len(lat) - 1, int(round(p / 100 * (len(lat) - 1))))]
    return pct(50), pct(99), len(lat)


def run_system(name, build, work, sc):
    log(f"{sc['name']}: {name}")
    sink = Sink(build, work, name, SINK_PORTS[name], sc)
    mta = None
    try:
        if name == "sluice-uring":
            mta = SluiceSystem(build, work, sink, sc)
        elif name == "postfix":
            mta = PostfixSystem(build, work, sink, sc)
        target = mta.target if mta else sink.addr
        root = mta.pid if mta else sink.proc.pid
        sampler = Sampler(root, mta.queue_fn if mta else None)
        sampler.start()
        cpu0 = mta.usage()[0] if mta else pstat(root)[0]
        probe = Probe(target, sc, name)
        probe.start()
        t0, t1, ok = run_sources(target, sc)
        probe.halt.set()
        probe.join()
        expected = sc["messages"] + len(probe.sent)
        complete = wait_delivery(sink, expected, sc["timeout"], sc["stall"])
        if mta:
            cpu1, hwm = mta.usage()
        else:
            st = pstat(root)
            cpu1, hwm = st[0], st[3]
        sampler.finish()
    finally:
        if mta:
            mta.stop()
        stop(sink.proc)
    recs = sink.records()
    delivered = len(recs)
    t_last = max((r["time"] for r in recs), default=t1)
    p50, p99, nprobe = latency(probe.sent, recs)
    res = {
        "messages": sc["messages"],
        "probes_sent": len(probe.sent),
        "probes_delivered": nprobe,
        "delivered": delivered,
        "complete": complete and ok,
        "accepted_per_s": (sc["messages"] + len(probe.sent)) / (t1 - t0),
        "delivered_per_s": delivered / max(t_last - t0, 1e-6),
        "p50_ms": p50,
        "p99_ms": p99,
        "cpu_s_per_1k": (cpu1 - cpu0) / max(delivered, 1) * 1000,
        "rss_mb": max(hwm, sampler.peak_rss),
        "inject_s": t1 - t0,
        "deliver_s": t_last - t0,
    }
    series = {"t0": t0, "times": [r["time"] for r in recs], "queue": sampler.queue}
    return res, series


# ---------------------------------------------------------------- report

def write_markdown(out, report):
    sc = report["params"]
    lines = [f"# sluice-bench: {report['scenario']}", "",
             report.get("description", "").strip(), "",
             f"{sc['messages']} messages, {sc['sessions']} injection sessions, sizes "
             + ", ".join(f"{s} B ({w:.0%})" for s, w in sc['sizes'])
             + ", domains " + ", ".join(f"{d} ({w:.0%})" for d, w in sc['domains'])
             + f"; {report['host']['cpus']} CPUs, kernel {report['host']['kernel']}, load average "
             f"{report['host']['loadavg_start']:.1f} at the start and "
             f"{report['host']['loadavg_end']:.1f} at the end (other work on the box skews "
             "the numbers).", "",
             "| system | accepted/s | delivered/s | p50 ms | p99 ms | CPU s/1k msgs | peak RSS MiB "
             "| × postfix | × ceiling | complete |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]

    def f(v, fmt):
        return "–" if v is None else format(v, fmt)
    for name, s in report["systems"].items():
        lines.append(f"| {name} | {f(s['accepted_per_s'], '.0f')} | {f(s['delivered_per_s'], '.0f')} "
                     f"| {f(s['p50_ms'], '.1f')} | {f(s['p99_ms'], '.1f')} "
                     f"| {f(s['cpu_s_per_1k'], '.3f')} | {f(s['rss_mb'], '.1f')} "
                     f"| {f(s['ratio_postfix'], '.2f')} | {f(s['ratio_ceiling'], '.2f')} "
                     f"| {'yes' if s['complete'] else 'NO'} |")
    lines += ["", "sluice-dpdk is not measured: the DPDK dataplane does not exist yet.",
              "CPU and RSS are the MTA's processes only (for the ceiling: the sink's); "
              "latency is from the probe messages (see docs/bench.md).", ""]
    for p in report.get("plots", []):
        lines.append(f"![{p}]({p})")
    (out / "report.md").write_text("\n".join(lines) + "\n")


def plot(out, series):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("warning: python3-matplotlib is missing; no plots")
        return []
    made = []
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, s in series.items():
        if not s["times"]:
            continue
        n = int(max(s["times"]) - s["t0"]) + 1
        bins = [0] * n
        for t in s["times"]:
            bins[max(0, int(t - s["t0"]))] += 1
        ax.plot(range(n), bins, label=name, drawstyle="steps-post", color=COLORS.get(name))
    ax.set_xlabel("seconds since injection start")
    ax.set_ylabel("messages delivered per second")
    ax.set_title("Throughput at the sink")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=100)
    plt.close(fig)
    made.append("throughput.png")
    if any(s["queue"] for s in series.values()):
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for name, s in series.items():
            if s["queue"]:
                ax.plot([t - s["t0"] for t, _ in s["queue"]], [q for _, q in s["queue"]], label=name,
                        color=COLORS.get(name))
        ax.set_xlabel("seconds since injection start")
        ax.set_ylabel("messages in queue")
        ax.set_title("Queue depth (sluice: sluice_queue_messages; postfix: queue files)")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "queue.png", dpi=100)
        plt.close(fig)
        made.append("queue.png")
    return made


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenario", nargs="?", default="throughput-4k",
                    help="name under bench/scenarios/ or a YAML file")
    ap.add_argument("--build", type=Path, default=ROOT / "build")
    ap.add_argument("--systems", help="comma-separated subset of " + ",".join(ALL_SYSTEMS))
    ap.add_argument("--messages", type=int, help="override the scenario's message count")
    ap.add_argument("--results", type=Path, default=ROOT / "bench/results",
                    help="where <timestamp>/ and latest go")
    ap.add_argument("--no-plots", action="store_true")
    a = ap.parse_args()
    if not os.environ.get("SLUICE_NETNS"):
        raise SystemExit("bench: run inside tests/netns.sh (bench/run.sh does it)")
    if not shutil.which("smtp-source"):
        raise SystemExit("bench: smtp-source not found (tests/deps.sh installs postfix)")
    sc = load_scenario(a.scenario)
    if a.messages:
        sc["messages"] = a.messages
    systems = a.systems.split(",") if a.systems else list(sc["systems"])
    for s in systems:
        if s not in ALL_SYSTEMS:
            raise SystemExit(f"bench: unknown system '{s}'")
    if "postfix" in systems and not Path("/usr/sbin/postfix").exists():
        log("postfix is not installed; skipping it")
        systems.remove("postfix")
    load0 = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="sluice-bench.", dir="/var/tmp"))
    results, series = {}, {}
    try:
        for name in [s for s in ALL_SYSTEMS if s in systems]:
            results[name], series[name] = run_system(name, a.build, work, sc)
    finally:
        if os.environ.get("BENCH_KEEP"):
            log(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    pf = results.get("postfix", {}).get("delivered_per_s")
    ce = results.get("ceiling", {}).get("delivered_per_s")
    for s in results.values():
        s["ratio_postfix"] = s["delivered_per_s"] / pf if pf else None
        s["ratio_ceiling"] = s["delivered_per_s"] / ce if ce else None
    out = a.results / time.strftime("%Y%m%d-%H%M%S")
    while out.exists():
        out = out.with_name(out.name + "x")
    out.mkdir(parents=True)
    report = {"scenario": sc["name"], "description": sc.get("description", ""),
              "systems": results,
              "params": {"messages": sc["messages"], "sessions": sc["sessions"],
                         "sizes": sc["sizes"], "domains": sc["domains"],
                         "probes": sc["probes"], "sink_rules": sc["sink"]["rules"]},
              "host": {"cpus": os.cpu_count(), "kernel": os.uname().release,
                       "loadavg_start": load0, "loadavg_end": os.getloadavg()[0]},
              "absent": {"sluice-dpdk": "not built yet"},
              "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if not a.no_plots:
        report["plots"] = plot(out, series)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(out, report)
    latest = a.results / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(out.name)
    print((out / "report.md").read_text())
    print(f"report: {out / 'report.json'}")
    bad = [n for n, s in results.items() if not s["complete"]]
    if bad:
        log("incomplete (timeout, stall or smtp-source errors): " + ", ".join(bad))
    # A peer cut short by the time limit still has a rate; sluice losing
    # or not delivering mail is a failure.
    return 1 if any(n.startswith("sluice") for n in bad) else 0


if __name__ == "__main__":
    sys.exit(main())
