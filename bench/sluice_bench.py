#!/usr/bin/python3
"""sluice-bench: run one benchmark scenario side by side against

  ceiling       load generator -> sluice-sink                 (no MTA at all)
  sluice-uring  load -> sluiced (durable spool, kernel TCP) -> sluice-sink
  sluice-dpdk   load -> sluiced (pool on the DPDK port over net_tap) -> sluice-sink
  postfix       load -> Debian's Postfix (durable queue) -> sluice-sink

one system after the other in the same run, and write
bench/results/<timestamp>/{report.json,report.md,*.png} (bench/results/latest
points at the newest). Must run inside the network namespace of
tests/netns.sh (bench/run.sh sets it up). How everything is measured:
docs/bench.md.
"""
import argparse
import datetime
import http.client
import json
import os
import random
import re
import resource
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SINK_ADDR = "203.0.113.25"
# Provider-aware scenarios: one receiver address per provider (the MX names
# of tests/dns.conf.in resolve to these) and sluiced learns the provider from
# the MX host name; Postfix gets the same split through a transport map.
PROVIDER_MX = {"gmail.test": ("gmail-smtp-in.l.google.test", "203.0.113.25", "google"),
               "yahoo.test": ("mta5.am0.yahoodns.test", "203.0.113.26", "yahoo"),
               "outlook.test": ("outlook-com.olc.protection.outlook.test", "203.0.113.27",
                                "microsoft")}
OTHER_ADDR = "203.0.113.28"   # every other domain (provider "*")
DNS_ADDR = "198.51.100.53"
SOURCE_IP = "198.51.100.10"
DPDK_BASE = 20              # sluice-dpdk: the scenario's source IPs become .20, .21, ...
DPDK_GATEWAY = "198.51.100.1"
DPDK_TAP = "sltap0"
SLUICE_PORT = 2525            # the first tenant's listener; tenant i: 2530 + i
METRICS_PORT = 9025
API_PORT = 8025
POSTFIX_LISTEN = "127.0.0.1:2526"
SINK_PORTS = {"ceiling": 2601, "sluice-uring": 2602, "postfix": 2603, "sluice-dpdk": 2604}
ALL_SYSTEMS = ["ceiling", "sluice-uring", "sluice-dpdk", "postfix"]
METRIC_KEYS = ["accepted_per_s", "delivered_per_s", "p50_ms", "p99_ms", "cpu_s_per_1k",
               "rss_mb", "ratio_postfix", "ratio_ceiling"]
COLORS = {"ceiling": "tab:gray", "sluice-uring": "tab:blue", "sluice-dpdk": "tab:green",
          "postfix": "tab:red"}
SENDER = "bench@acme.test"
TCK = os.sysconf("SC_CLK_TCK")
HOUR_MS = 3600_000
DAY_MS = 24 * HOUR_MS

# The deferral each provider style gives above its per-IP rate.
STYLES = {
    "gmail": "421 4.7.28 Our system has detected an unusual rate of unsolicited mail "
             "originating from your IP address. Please try again later.",
    "yahoo": "421 4.7.0 [TSS04] Messages from your IP temporarily deferred due to "
             "unexpected volume or user complaints",
    "microsoft": "451 4.7.500 Server busy. Please try again later.",
}


class Skip(Exception):
    """A system that cannot run here; the reason goes into the report."""


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
    """A scalar, a list (equal weights) or a {value: weight} map -> [(value, w)].
    {generate: N, pattern: "d{i}.test"} makes N equally weighted names."""
    if isinstance(v, dict) and "generate" in v:
        pat = v.get("pattern", "d{i}.test")
        v = [pat.format(i=i) for i in range(int(v["generate"]))]
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
    sc.setdefault("kind", "throughput")
    if sc["kind"] not in ("throughput", "warmup", "concurrency", "noisy-neighbour"):
        raise SystemExit(f"bench: unknown kind '{sc['kind']}'")
    sc["messages"] = int(sc["messages"])
    sc["sessions"] = int(sc.get("sessions", 20))
    if sc["messages"] <= 0 or sc["sessions"] <= 0:
        raise SystemExit("bench: messages and sessions must be positive")
    sc["sizes"] = weights(sc.get("size", 4096), parse_size)
    sc["domains"] = weights(sc.get("domains", ["example.test"]), str)
    inj = sc.setdefault("inject", {})
    inj.setdefault("protocol", "smtp")
    inj.setdefault("batch", 100)
    inj.setdefault("rate", None)     # messages/s, None = as fast as possible
    if inj["protocol"] not in ("smtp", "http"):
        raise SystemExit("bench: inject.protocol is smtp or http")
    sc.setdefault("systems", ALL_SYSTEMS)
    sc.setdefault("timeout", 300)
    sc.setdefault("stall", 20)
    pr = sc.setdefault("probes", {})
    pr.setdefault("count", 200)
    pr.setdefault("rate", 20)
    sink = sc.setdefault("sink", {})
    sink.setdefault("rules", "")
    sink.setdefault("threads", 1)
    sink.setdefault("tls", False)
    sink.setdefault("providers", {})
    sc.setdefault("sluice", {})
    sc.setdefault("postfix", {})
    # Tenants: each with its own share of the load (or only probes), stream
    # and pool; without a list, one tenant takes everything.
    tenants = sc.get("tenants") or [{"name": "bench"}]
    left = sc["messages"]
    for i, t in enumerate(tenants):
        t.setdefault("stream", "transactional")
        t["port"] = SLUICE_PORT if i == 0 else 2530 + i
        t["sizes"] = weights(t["size"], parse_size) if "size" in t else sc["sizes"]
        t["domains"] = weights(t["domains"], str) if "domains" in t else sc["domains"]
        t.setdefault("share", 1.0 if len(tenants) == 1 else 0.0)
        t["messages"] = int(t.get("messages", round(sc["messages"] * t["share"])))
        t["sessions"] = int(t.get("sessions", max(1, round(sc["sessions"] * t["share"]))))
        t.setdefault("probes", i == 0)
        t["unknown"] = {d: float(p.get("unknown_users", 0))
                        for d, p in sink["providers"].items()}
        left -= t["messages"]
    sc["tenants"] = tenants
    sc["provider_aware"] = bool(sink["providers"]) or sc["kind"] == "warmup" or \
        bool(sc.get("provider_aware"))
    return sc


def streams(tenant):
    """Split a tenant's load into one smtp-source per (size, domain, known
    or unknown recipient): smtp-source sends one fixed size to one
    recipient. Messages and sessions are shared out by weight; every stream
    gets at least one session."""
    out = []
    for size, ws in tenant["sizes"]:
        for dom, wd in tenant["domains"]:
            u = tenant["unknown"].get(dom, 0.0)
            out.append({"size": size, "domain": dom, "w": ws * wd * (1 - u), "unknown": False})
            if u:
                out.append({"size": size, "domain": dom, "w": ws * wd * u, "unknown": True})
    left = tenant["messages"]
    for i, s in enumerate(out):
        s["messages"] = left if i == len(out) - 1 else round(tenant["messages"] * s["w"])
        left -= s["messages"]
        s["sessions"] = max(1, round(tenant["sessions"] * s["w"]))
    return [s for s in out if s["messages"] > 0]


UNKNOWN_USER = "nosuchuser"


def sink_rules(sc, ceiling):
    """The scenario's literal rules, then (not for the ceiling: the load
    generator does not retry) the provider emulation: unknown-user fraction,
    deferral above a per-IP rate in the provider's wording, messages per
    connection, tarpit."""
    out = [sc["sink"]["rules"].rstrip()]
    if ceiling:
        return "\n".join(out) + "\n"
    for dom, p in sc["sink"]["providers"].items():
        style = p.get("style") or next((s for s in STYLES if s in dom),
                                       "microsoft" if "outlook" in dom else "gmail")
        defer = STYLES[style]
        out.append(f"# {dom}: {style}-style")
        if p.get("unknown_users"):
            # The load sends that fraction to this user: the same
            # recipients bounce however often a message is retried.
            out.append(f"{dom}  reject-user  {UNKNOWN_USER}")
        if p.get("rate_per_ip"):
            out.append(f"{dom}  rate-per-ip  {p['rate_per_ip']}  {defer}")
        if p.get("max_per_connection"):
            out.append(f"{dom}  defer-after-conn  {int(p['max_per_connection'])}")
        if p.get("delay"):
            out.append(f"{dom}  delay  {p['delay']}")
    return "\n".join(out) + "\n"


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


def stop(p, timeout=30):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def many_files():
    """Child setup: lift the descriptor limit (the concurrency scenario holds
    tens of thousands of connections)."""
    try:
        n = int(Path("/proc/sys/fs/nr_open").read_text())
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    except (OSError, ValueError):
        pass


class Sink:
    def __init__(self, build, work, name, port, sc, certs):
        self.dir = work / f"sink-{name}"
        self.dir.mkdir()
        self.log = self.dir / "sink.jsonl"
        self.stats = self.dir / "stats.json"
        addrs = [SINK_ADDR]
        if sc["provider_aware"]:
            addrs = sorted({a for _, a, _ in PROVIDER_MX.values()} | {OTHER_ADDR})
        args = [str(build / "sluice-sink"), "-q", "-L", str(self.log),
                "--stats", str(self.stats), "-t", str(sc["sink"]["threads"]), "-n", "sink.test"]
        for a in addrs:
            args += ["-l", f"{a}:{port}"]
        if sc["sink"]["tls"]:
            args += ["--tls-cert", str(certs[0]), "--tls-key", str(certs[1])]
        rules = sink_rules(sc, name == "ceiling")
        if rules.strip():
            (self.dir / "rules").write_text(rules)
            args += ["-r", str(self.dir / "rules")]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                     stderr=open(self.dir / "sink.err", "w"),
                                     preexec_fn=many_files)
        wait_port(SINK_ADDR, port, proc=self.proc)
        self.addr = f"{SINK_ADDR}:{port}"
        self.port = port
        self._off = 0
        self._recs = []
        self._lock = threading.Lock()

    def stat(self, key="messages"):
        try:
            return json.loads(self.stats.read_text()).get(key, 0)
        except (OSError, ValueError):
            return 0

    def records(self):
        """Every complete line of the message log so far (read incrementally)."""
        with self._lock:
            try:
                with open(self.log, "rb") as f:
                    f.seek(self._off)
                    data = f.read()
            except OSError:
                return self._recs
            end = data.rfind(b"\n") + 1
            self._off += end
            for line in data[:end].splitlines():
                try:
                    self._recs.append(json.loads(line))
                except ValueError:
                    pass
            return self._recs


def is_load(rec):
    """A message of the load, not a DSN an MTA sent back to the sender."""
    return bool(rec.get("rcpts")) and rec["rcpts"][0] != SENDER


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


def http_get(port, path):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
            data = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                data += b
        return data.decode(errors="replace")
    except OSError:
        return None


def sluice_metrics():
    """{name: value} of sluiced's unlabelled metrics, or None."""
    text = http_get(METRICS_PORT, "/metrics")
    if text is None:
        return None
    out = {}
    for line in text.split("\r\n\r\n", 1)[-1].splitlines():
        if line and not line.startswith("#") and "{" not in line:
            k, _, v = line.partition(" ")
            try:
                out[k] = float(v)
            except ValueError:
                pass
    return out


class Sampler(threading.Thread):
    """Every 0.5 s (0.25 s with sessions): the system's memory (summed PSS
    of its process tree), queue depth and, for sluiced, outbound sessions."""

    def __init__(self, mta, period=0.5):
        super().__init__(daemon=True)
        self.mta = mta
        self.period = period
        self.peak_rss = 0.0
        self.queue, self.sessions, self.rss = [], [], []
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            t = time.time()
            if self.mta.pid:
                _, rss = tree_usage(self.mta.pid)
                self.peak_rss = max(self.peak_rss, rss)
                self.rss.append((t, rss))
            q, s = self.mta.gauges()
            if q is not None:
                self.queue.append((t, q))
            if s is not None:
                self.sessions.append((t, s))
            self.halt.wait(self.period)

    def finish(self):
        self.halt.set()
        self.join()


# ---------------------------------------------------------------- load

def raw_message(rcpt, size, mid, stream=None):
    hdr = (f"From: <{SENDER}>\r\nTo: <{rcpt}>\r\nSubject: bench\r\nMessage-ID: {mid}\r\n"
           + (f"X-Sluice-Stream: {stream}\r\n" if stream else "") + "\r\n")
    line = "x" * 76 + "\r\n"
    return hdr + line * max(1, (size - len(hdr)) // len(line))


class SmtpSourceLoad:
    """One tenant's load as smtp-source processes (one per size × domain)."""

    def __init__(self, target, tenant):
        self.target, self.tenant = target, tenant
        self.procs = []
        self.sent = {}       # no per-message ids: latency comes from probes
        self.errors = []

    def start(self):
        host, port = self.target.rsplit(":", 1)
        for i, st in enumerate(streams(self.tenant)):
            self.procs.append(subprocess.Popen(
                ["smtp-source", "-d", "-l", str(st["size"]), "-m", str(st["messages"]),
                 "-s", str(st["sessions"]), "-M", "client.bench.test", "-f", SENDER,
                 "-t", f"{UNKNOWN_USER if st['unknown'] else f'user{i}'}@{st['domain']}",
                 f"{host}:{port}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))

    def join(self):
        for p in self.procs:
            _, err = p.communicate()
            if p.returncode:
                self.errors.append(err.decode(errors="replace").strip())
        return self.tenant["messages"]

    def kill(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


class PyLoad:
    """One tenant's load from Python threads with a unique Message-ID per
    message (so every message's latency is known): HTTP (POST /v1/messages,
    BATCH messages per request) or SMTP (smtplib), CONCURRENCY workers, at
    most RATE messages/s overall if given."""

    def __init__(self, system, tenant, sc, tag, protocol):
        self.sys, self.tenant, self.sc, self.protocol = system, tenant, sc, protocol
        self.tag = f"{tag}-{os.getpid()}-{random.randrange(1 << 30):x}"
        inj = sc["inject"]
        self.batch = int(inj["batch"]) if protocol == "http" else 1
        self.rate = inj["rate"]
        self.sent = {}
        self.accepted = 0
        self.errors = []
        self.lock = threading.Lock()
        self.next = 0
        rng = random.Random(tenant["name"])
        sizes, doms = tenant["sizes"], tenant["domains"]
        n = tenant["messages"]
        self.plan = []
        for _ in range(n):
            d = rng.choices([d for d, _ in doms], [w for _, w in doms])[0]
            sz = rng.choices([s for s, _ in sizes], [w for _, w in sizes])[0]
            self.plan.append((d, sz, rng.random() < tenant["unknown"].get(d, 0.0)))
        self.templates = {}
        workers = inj.get("concurrency", tenant["sessions"]) if protocol == "http" \
            else tenant["sessions"]
        self.threads = [threading.Thread(target=self.worker, daemon=True)
                        for _ in range(max(1, int(workers)))]
        self.halt = threading.Event()
        self.t0 = None

    def take(self):
        with self.lock:
            i = self.next
            if i >= len(self.plan) or self.halt.is_set():
                return None
            self.next = min(len(self.plan), i + self.batch)
            return i, self.next

    def body(self, i):
        dom, size, unknown = self.plan[i]
        mid = f"<m.{i}.{self.tag}@bench.test>"
        rcpt = f"{UNKNOWN_USER if unknown else f'u{i % 1000}'}@{dom}"
        return mid, rcpt, size, dom

    def http_json(self, i):
        mid, rcpt, size, _ = self.body(i)
        key = (size,)
        t = self.templates.get(key)
        if t is None:
            t = json.dumps(raw_message("@@RCPT@@", size, "@@MID@@"))
            self.templates[key] = t
        return ('{"from":"%s","to":["%s"],"raw":%s}' %
                (SENDER, rcpt, t.replace("@@RCPT@@", rcpt).replace("@@MID@@", mid))), mid

    def worker(self):
        conn = None
        while True:
            r = self.take()
            if r is None:
                break
            lo, hi = r
            if self.rate:
                wait = self.t0 + lo / self.rate - time.time()
                if wait > 0 and self.halt.wait(wait):
                    break
            try:
                if self.protocol == "http":
                    conn = self.post(conn, lo, hi)
                else:
                    conn = self.smtp(conn, lo)
            except (OSError, smtplib.SMTPException, http.client.HTTPException, ValueError) as e:
                self.errors.append(f"{type(e).__name__}: {e}")
                conn = None
        if conn is not None:
            try:
                conn.close()
            except (OSError, smtplib.SMTPException):
                pass

    def post(self, conn, lo, hi):
        parts, mids = [], []
        for i in range(lo, hi):
            j, mid = self.http_json(i)
            parts.append(j)
            # Unknown users bounce: they have no delivery latency.
            mids.append(None if self.plan[i][2] else mid)
        data = ('{"messages":[' + ",".join(parts) + "]}").encode()
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", API_PORT, timeout=120)
        path = "/v1/messages" + (f"?tenant={self.tenant['name']}" if self.sys.operator_token
                                 == self.tenant.get("token") else "")
        t = time.time()
        conn.request("POST", path, body=data,
                     headers={"Authorization": f"Bearer {self.tenant['token']}",
                              "Content-Type": "application/json"})
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise ValueError(f"HTTP {r.status}: {body[:200]!r}")
        reply = json.loads(body)
        with self.lock:
            self.accepted += reply.get("accepted", 0)
            for m, mid in zip(reply.get("messages", []), mids):
                if m.get("status") == "accepted" and mid:
                    self.sent[mid] = t
        if reply.get("rejected"):
            self.errors.append(f"{reply['rejected']} rejected: "
                               f"{[m.get('reason') for m in reply['messages'] if m.get('reason')][:1]}")
        return conn

    def smtp(self, conn, i):
        mid, rcpt, size, _ = self.body(i)
        if conn is None:
            host, port = self.sys.target(self.tenant).rsplit(":", 1)
            conn = smtplib.SMTP(host, int(port), "load.bench.test", timeout=60)
        t = time.time()
        conn.sendmail(SENDER, [rcpt], raw_message(rcpt, size, mid))
        with self.lock:
            self.accepted += 1
            if not self.plan[i][2]:
                self.sent[mid] = t
        return conn

    def start(self):
        self.t0 = time.time()
        for t in self.threads:
            t.start()

    def join(self):
        for t in self.threads:
            t.join()
        if self.errors:
            log(f"{self.tenant['name']}: {len(self.errors)} injection errors, e.g. {self.errors[0]}")
        return self.accepted

    def kill(self):
        self.halt.set()


class Probe(threading.Thread):
    """Latency probes: up to COUNT messages with unique Message-IDs, injected
    at RATE per second over one SMTP connection (or one HTTP request each)
    while the load runs."""

    def __init__(self, system, tenant, sc, tag, protocol="smtp"):
        super().__init__(daemon=True)
        self.sys, self.tenant, self.protocol = system, tenant, protocol
        self.count, self.rate = sc["probes"]["count"], sc["probes"]["rate"]
        self.size = tenant["sizes"][0][0]
        self.domain = tenant["domains"][0][0]
        self.tag = f"{tag}-{os.getpid()}-{random.randrange(1 << 30):x}"
        self.sent = {}
        self.errors = 0
        self.halt = threading.Event()

    def run(self):
        conn = None
        nxt = time.time()
        rcpt = f"probe@{self.domain}"
        for i in range(self.count):
            if self.halt.wait(max(0.0, nxt - time.time())):
                break
            nxt += 1.0 / self.rate
            mid = f"<probe.{i}.{self.tag}@bench.test>"
            body = raw_message(rcpt, self.size, mid)
            try:
                if self.protocol == "http":
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", API_PORT, timeout=30)
                    t = time.time()
                    conn.request("POST", "/v1/messages", body=json.dumps(
                        {"messages": [{"from": SENDER, "to": [rcpt], "raw": body}]}).encode(),
                        headers={"Authorization": f"Bearer {self.tenant['token']}",
                                 "Content-Type": "application/json"})
                    r = conn.getresponse()
                    ok = r.status == 200 and json.loads(r.read()).get("accepted") == 1
                    if not ok:
                        raise OSError(f"HTTP {r.status}")
                else:
                    if conn is None:
                        host, port = self.sys.target(self.tenant).rsplit(":", 1)
                        conn = smtplib.SMTP(host, int(port), "probe.bench.test", timeout=30)
                    t = time.time()
                    conn.sendmail(SENDER, [rcpt], body)
                self.sent[mid] = t
            except (OSError, smtplib.SMTPException, http.client.HTTPException, ValueError):
                self.errors += 1
                conn = None
        if conn is not None:
            try:
                conn.close() if self.protocol == "http" else conn.quit()
            except (OSError, smtplib.SMTPException):
                pass


# ---------------------------------------------------------------- systems

def sluice_config(sc, sink, spool, events, control, variant, warmup_file, tls_certs,
                  dkim_keys=()):
    opts = sc["sluice"]
    pa = sc["provider_aware"]
    ips = opts.get("ips", ["198.51.100.10", "198.51.100.11"])
    pools = [{"name": "default",
              "ips": [{"address": a, "ehlo": f"mta{i + 1}.bench.test"} for i, a in enumerate(ips)]}]
    for name, pips in opts.get("pools", {}).items():
        pools.append({"name": name, "ips": [{"address": a, "ehlo": f"{name}{i + 1}.bench.test"}
                                            for i, a in enumerate(pips)]})
    if variant == "dpdk":
        # Every pool's mail leaves through the DPDK port, from its own
        # addresses (the kernel's may not be reused).
        for p in pools:
            p["transport"] = "dpdk"
            for ip in p["ips"]:
                ip["address"] = dpdk_ip(sc, ip["address"])
    listeners, tenants = [], []
    for t in sc["tenants"]:
        if t.get("via_api"):
            continue
        listeners.append({"name": f"in-{t['name']}", "address": f"127.0.0.1:{t['port']}",
                          "relay_networks": ["127.0.0.0/8"], "relay_tenant": t["name"]})
        td = {"name": t["name"], "stream": t["stream"]}
        for k in ("pool", "transactional_pool", "marketing_pool"):
            if k in t:
                td[k] = t[k]
        tenants.append(td)
    if not listeners:  # HTTP-only tenants: keep an SMTP listener for probes
        listeners.append({"name": "submission", "address": f"127.0.0.1:{SLUICE_PORT}"})
    host, port = sink.addr.rsplit(":", 1)
    routes = []
    if pa:
        for dom, (mx, _, _) in PROVIDER_MX.items():
            routes.append({"domain": dom, "host": mx, "port": int(port)})
        routes.append({"domain": "*", "host": OTHER_ADDR, "port": int(port)})
    else:
        routes.append({"domain": "*", "host": host, "port": int(port)})
    delivery = {"max_connections_per_domain": opts.get("max_connections_per_domain", 32),
                "max_messages_per_connection": opts.get("max_messages_per_connection", 1000),
                "retry_schedule": opts.get("retry_schedule", ["1s", "2s", "5s"])}
    for k in ("max_connections", "connect_timeout", "command_timeout"):
        if k in opts:
            delivery[k] = opts[k]
    conf = {"hostname": "sluice.bench.test", "listeners": listeners, "tenants": tenants,
            "pools": pools, "routes": routes, "delivery": delivery,
            "spool": {"path": str(spool), "sync": True}, "events": {"path": str(events)},
            "metrics": {"address": f"127.0.0.1:{METRICS_PORT}"}}
    if needs_api(sc):
        conf["control"] = {"store": str(control), "api": {"address": f"127.0.0.1:{API_PORT}"}}
    if dkim_keys:  # every message is From the SENDER's domain: sign it with each key
        conf["dkim"] = [{"domain": SENDER.split("@")[1], "selector": f"s{i + 1}",
                         "key": str(path), "algorithm": algo}
                        for i, (algo, path) in enumerate(dkim_keys)]
    if not tenants:
        conf.pop("tenants")
    if pa:
        conf["dns"] = {"servers": [DNS_ADDR]}
        conf["shaping"] = {"providers": str(ROOT / "configs/providers.conf")}
    if warmup_file:
        conf["warmup"] = {"schedules": str(warmup_file),
                          "test_clock_scale": int(sc["warmup"]["scale"])}
    if variant == "dpdk":
        eal = ["--no-huge", "--no-pci", "-m", "256", "--no-shconf", "--no-telemetry",
               "-l", "0", f"--file-prefix=slbench{os.getpid()}",
               f"--vdev=net_tap0,iface={DPDK_TAP}", "--log-level=pmd.net.tap:error"]
        conf["dpdk"] = {"eal_args": eal, "gateway": DPDK_GATEWAY, "prefix_len": 24,
                        "mbufs": 8191, "idle_sleep": opts.get("dpdk_idle_sleep", "1ms")}
    return yaml.safe_dump(conf, sort_keys=False)


def needs_api(sc):
    """The control store and admin API only where the scenario uses them
    (HTTP injection, tenant hold): other runs measure sluiced as before."""
    return sc["inject"]["protocol"] == "http" or sc["kind"] == "concurrency"


def dpdk_ip(sc, ip):
    """The DPDK port's stand-in for one of the scenario's source IPs."""
    opts = sc["sluice"]
    seen = list(opts.get("ips", ["198.51.100.10", "198.51.100.11"]))
    for pips in opts.get("pools", {}).values():
        seen += [a for a in pips if a not in seen]
    return f"198.51.100.{DPDK_BASE + seen.index(ip)}" if ip in seen else ip


def warmup_config(sc, path, variant):
    """warmup.yaml: the shipped schedules, the scenario's warming IPs from
    today (UTC) and the pools' overflow."""
    w = sc["warmup"]
    base = yaml.safe_load((ROOT / "configs/warmup.yaml").read_text())
    start = datetime.datetime.utcnow().date().isoformat()
    doc = {"schedules": base["schedules"],
           "pools": {"default": {"overflow": w.get("overflow", "spill")}},
           "ips": {(dpdk_ip(sc, ip) if variant == "dpdk" else ip):
                   {"schedule": w.get("schedule", "standard"), "start": start}
                   for ip in w["ips"]}}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return base["schedules"][w.get("schedule", "standard")]


class Outcomes:
    """Per-domain outcome counts from an MTA's log, read incrementally (the
    wait loop asks twice a second)."""

    def __init__(self):
        self.off = 0
        self.out = defaultdict(Counter)

    def outcomes(self, path, parse):
        try:
            with open(path, "rb") as f:
                f.seek(self.off)
                data = f.read()
        except OSError:
            return self.out
        end = data.rfind(b"\n") + 1
        self.off += end
        for line in data[:end].decode(errors="replace").splitlines():
            r = parse(line)
            if r:
                self.out[r[0]][r[1]] += 1
        return self.out


def sluice_event(line):
    """(domain, delivered|deferred|bounced|expired) of a load recipient."""
    m = re.search(r'"event":"(delivered|deferred|bounced|expired)"', line)
    if not m or f'"rcpt":"{SENDER}"' in line:
        return None
    d = re.search(r'"domain":"([^"]*)"', line)
    return (d.group(1) if d else "?"), m.group(1)


POSTFIX_STATUS = re.compile(r"to=<[^@>]*@([^>]+)>.*status=(sent|deferred|bounced|expired)")


def postfix_event(line):
    m = POSTFIX_STATUS.search(line)
    if not m or f"to=<{SENDER}>" in line:
        return None
    return m.group(1), {"sent": "delivered"}.get(m.group(2), m.group(2))


class SluiceSystem:
    def __init__(self, build, work, sink, sc, variant, certs):
        self.name = f"sluice-{variant}"
        self.variant = variant
        self.sc = sc
        self.dir = work / self.name
        self.dir.mkdir()
        self.events = self.dir / "events.jsonl"
        self.control = self.dir / "control"
        self.tail = Outcomes()
        self.schedule = None
        warm = None
        env = dict(os.environ)
        if sc["kind"] == "warmup":
            warm = self.dir / "warmup.yaml"
            self.schedule = warmup_config(sc, warm, variant)
            env["SLUICE_TEST_CLOCK"] = "1"
        keys = []
        for algo in sc["sluice"].get("dkim", []):  # signing at acceptance (scenario dkim)
            key = self.dir / f"dkim-{algo}.pem"
            subprocess.run([str(build / "sluicectl"), "dkim", "keygen", "--algo", algo,
                            "--out", str(key)], check=True, capture_output=True)
            keys.append((algo, key))
        self.conf = self.dir / "sluice.yaml"
        self.conf.write_text(sluice_config(sc, sink, self.dir / "spool", self.events,
                                           self.control, variant, warm, certs, keys))
        if variant == "dpdk":
            self.dpdk_preflight(build, env)
        self.proc = subprocess.Popen([str(build / "sluiced"), "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, env=env,
                                     stderr=open(self.dir / "sluiced.err", "w"),
                                     preexec_fn=many_files)
        try:
            wait_port("127.0.0.1", SLUICE_PORT, proc=self.proc, timeout=30)
            if needs_api(sc):
                wait_port("127.0.0.1", API_PORT, proc=self.proc)
        except (RuntimeError, TimeoutError) as e:
            err = (self.dir / "sluiced.err").read_text()[-600:]
            stop(self.proc)
            if variant == "dpdk":
                raise Skip(f"sluiced could not start its DPDK port: {err.strip()}") from e
            raise RuntimeError(f"sluiced did not start: {err}") from e
        if variant == "dpdk":
            self.dpdk_kernel_side()
        self.pid = self.proc.pid
        self.operator_token = (self.control / "admin.token").read_text().strip() \
            if needs_api(sc) else None

    def dpdk_preflight(self, build, env):
        """Skip (with the reason) unless this sluiced has the dpdk transport
        and a TAP device can be made here."""
        r = subprocess.run([str(build / "sluiced"), "-n", "-c", str(self.conf)],
                           capture_output=True, text=True, env=env)
        if r.returncode != 0:
            why = (r.stderr.strip().splitlines() or ["?"])[0]
            why = re.sub(r"^.*?\.yaml:\d+:\d+: ", "", why).split(" (expected")[0]
            raise Skip(f"this sluiced has no DPDK transport (sluiced -n: {why})")
        if not os.path.exists("/dev/net/tun"):
            raise Skip("no /dev/net/tun for the net_tap port")
        r = subprocess.run(["ip", "tuntap", "add", "dev", "slbprobe0", "mode", "tap"],
                           capture_output=True, text=True)
        if r.returncode:
            raise Skip(f"cannot create a TAP device: {r.stderr.strip()}")
        subprocess.run(["ip", "link", "del", "slbprobe0"], capture_output=True)

    def dpdk_kernel_side(self):
        end = time.time() + 10
        while not os.path.exists(f"/sys/class/net/{DPDK_TAP}") and time.time() < end:
            time.sleep(0.1)
        for cmd in (["ip", "addr", "add", f"{DPDK_GATEWAY}/24", "dev", DPDK_TAP],
                    ["ip", "link", "set", DPDK_TAP, "up"],
                    ["ethtool", "-K", DPDK_TAP, "tx", "off"]):
            subprocess.run(cmd, capture_output=True)

    def target(self, tenant):
        return f"127.0.0.1:{tenant['port']}"

    def api(self, method, path, body=None, token=None):
        conn = http.client.HTTPConnection("127.0.0.1", API_PORT, timeout=30)
        conn.request(method, path, body=json.dumps(body or {}).encode(),
                     headers={"Authorization": f"Bearer {token or self.operator_token}",
                              "Content-Type": "application/json"})
        r = conn.getresponse()
        text = r.read()
        conn.close()
        if r.status >= 300:
            raise RuntimeError(f"API {method} {path}: {r.status} {text[:200]!r}")
        return json.loads(text) if text else None

    def prepare_tenant(self, t):
        """HTTP injection: a tenant created through the API (pending review),
        approved, with a tenant token; a config tenant injects with the
        operator token and ?tenant=."""
        if t.get("via_api"):
            self.api("POST", "/v1/tenants", {"name": t["name"], "reason": "sluice-bench"})
            self.api("POST", f"/v1/tenants/{t['name']}/approve", {"reason": "sluice-bench"})
            t["token"] = self.api("POST", "/v1/tokens", {"role": "tenant",
                                                         "tenant": t["name"]})["token"]
        else:
            t["token"] = self.operator_token

    def usage(self):
        st = pstat(self.pid)
        return (st[0], st[3]) if st else (0.0, 0.0)

    def rss_now(self):
        st = pstat(self.pid)
        return st[2] if st else 0.0

    def gauges(self):
        m = sluice_metrics()
        if not m:
            return None, None
        return m.get("sluice_queue_messages"), m.get("sluice_egress_sessions")

    def outcomes(self):
        """Per domain: deferral attempts and bounced recipients (event log)."""
        return self.tail.outcomes(self.events, sluice_event)

    def bounced(self):
        return sum(c["bounced"] + c["expired"] for c in self.outcomes().values())

    def stop(self):
        stop(self.proc, timeout=60)


class PostfixSystem:
    name = "postfix"
    operator_token = None

    def __init__(self, build, work, sink, sc, certs):
        self.dir = work / "postfix"
        self.etc = self.dir / "etc"
        self.etc.mkdir(parents=True)
        self.queue = self.dir / "queue"
        self.logf = self.dir / "postfix.log"
        self.tail = Outcomes()
        data = self.dir / "data"
        for d in (self.queue, data):
            d.mkdir()
        shutil.chown(data, "postfix")
        # The queue's parent must be owned by root, and walkable by postfix.
        os.chmod(work, 0o755)
        os.chmod(self.dir, 0o755)
        peers = ROOT / "bench/peers/postfix"
        subst = {"@QUEUE@": str(self.queue), "@DATA@": str(data),
                 "@LOG@": str(self.logf), "@RELAY@": f"[{SINK_ADDR}]:{sink.port}",
                 "@SOURCE_IP@": SOURCE_IP, "@LISTEN@": POSTFIX_LISTEN}
        for f in ("main.cf", "master.cf"):
            text = (peers / f).read_text()
            for k, v in subst.items():
                text = text.replace(k, v)
            (self.etc / f).write_text(text)
        extra = dict(sc["postfix"].get("main_cf", {}))
        if sc["provider_aware"]:
            # One destination per provider, like MX delivery would give.
            tm = self.etc / "transport"
            tm.write_text("".join(f"{d} smtp:[{a}]:{sink.port}\n"
                                  for d, (_, a, _) in PROVIDER_MX.items()))
            extra["transport_maps"] = f"texthash:{tm}"
            extra["relayhost"] = f"[{OTHER_ADDR}]:{sink.port}"
        if sc["sink"]["tls"]:
            extra["smtp_tls_security_level"] = "may"
        if extra:
            r = subprocess.run(["/usr/sbin/postconf", "-c", str(self.etc), "-e"]
                               + [f"{k}={v}" for k, v in extra.items()],
                               capture_output=True, text=True)
            if r.returncode:
                raise RuntimeError(f"postconf: {r.stderr.strip()}")
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

    def target(self, tenant):
        return POSTFIX_LISTEN

    def prepare_tenant(self, t):
        pass

    def gauges(self):
        n = 0
        for sub in ("incoming", "active", "deferred", "maildrop"):
            for _, _, files in os.walk(self.queue / sub):
                n += len(files)
        return n, None

    def usage(self):
        cpu, _ = tree_usage(self.pid)
        return cpu, 0.0

    def rss_now(self):
        return tree_usage(self.pid)[1]

    def outcomes(self):
        """Per domain: deferral attempts and bounced recipients (its log)."""
        return self.tail.outcomes(self.logf, postfix_event)

    def bounced(self):
        return sum(c["bounced"] + c["expired"] for c in self.outcomes().values())

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


class Ceiling:
    """No MTA: the load goes straight into the sink."""
    name = "ceiling"
    operator_token = None

    def __init__(self, sink):
        self.sink = sink
        self.pid = sink.proc.pid

    def target(self, tenant):
        return self.sink.addr

    def prepare_tenant(self, t):
        pass

    def gauges(self):
        return None, None

    def usage(self):
        st = pstat(self.pid)
        return (st[0], st[3]) if st else (0.0, 0.0)

    def rss_now(self):
        st = pstat(self.pid)
        return st[2] if st else 0.0

    def outcomes(self):
        return {}

    def bounced(self):
        return 0

    def stop(self):
        pass


def percentile(vals, p):
    if not vals:
        return None
    vals = sorted(vals)
    return vals[min(len(vals) - 1, int(round(p / 100 * (len(vals) - 1))))]


def latency(sent, records):
    """p50 and p99 injection→delivery latency (ms) of the messages in SENT
    and how many arrived. A message that never arrived counts as infinitely
    late: a percentile that falls on one is None (not a flattering number)."""
    got = {r.get("message_id"): r["time"] for r in records if r.get("message_id") in sent}
    lat = [(got[m] - t) * 1000 if m in got else float("inf") for m, t in sent.items()]
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    fin = (lambda v: v if v is not None and v != float("inf") else None)
    return fin(p50), fin(p99), len(got)


def wait_done(sink, mta, expected, timeout, stall, pred=None):
    """Until the sink has EXPECTED load messages (or, with PRED, until
    PRED() holds) counting the MTA's bounces, nothing moved for STALL
    seconds, or TIMEOUT passed."""
    end = time.time() + timeout
    last, last_t = -1, time.time()
    while time.time() < end:
        n = sum(1 for r in sink.records() if is_load(r))
        b = mta.bounced()
        if (pred() if pred else n + b >= expected):
            return True
        if n + b != last:
            last, last_t = n + b, time.time()
        elif time.time() - last_t > stall:
            log(f"no progress for {stall}s at {n} delivered + {b} bounced / {expected}")
            return False
        time.sleep(0.5)
    log(f"timeout at {sum(1 for r in sink.records() if is_load(r))}/{expected} delivered")
    return False


def make_mta(name, build, work, sink, sc, certs):
    if name == "ceiling":
        return Ceiling(sink)
    if name == "postfix":
        if sc["inject"]["protocol"] == "http" and sc["kind"] == "concurrency":
            raise Skip("needs sluiced's HTTP API")
        return PostfixSystem(build, work, sink, sc, certs)
    return SluiceSystem(build, work, sink, sc, name.split("-", 1)[1], certs)


def protocol_for(mta, sc):
    """HTTP injection where the system has the API; the ceiling and Postfix
    get the same messages over SMTP."""
    return "http" if sc["inject"]["protocol"] == "http" and isinstance(mta, SluiceSystem) \
        else "smtp"


def make_load(mta, t, sc, name):
    proto = protocol_for(mta, sc)
    if proto == "http":
        return PyLoad(mta, t, sc, name, "http")
    if sc["inject"]["rate"]:
        return PyLoad(mta, t, sc, name, "smtp")
    return SmtpSourceLoad(mta.target(t), t)


def run_system(name, build, work, sc, certs):
    log(f"{sc['name']}: {name}")
    sink = Sink(build, work, name, SINK_PORTS[name], sc, certs)
    mta = None
    extra = {}
    try:
        mta = make_mta(name, build, work, sink, sc, certs)
        for t in sc["tenants"]:
            mta.prepare_tenant(t)
        proto = protocol_for(mta, sc)
        sampler = Sampler(mta, 0.25 if sc["kind"] == "concurrency" else 0.5)
        sampler.start()
        if sc["kind"] == "noisy-neighbour":
            extra["alone"] = quiet_alone(mta, sink, sc, name)
        cpu0 = mta.usage()[0]
        if sc["kind"] == "concurrency":
            res, (t0, t1, injected, sent) = run_concurrency(mta, sink, sc, sampler)
            extra.update(res)
            complete, probe_sent = extra["complete"], {}
        else:
            probe = None
            quiet = [t for t in sc["tenants"] if t["probes"]]
            use_probes = sc["probes"]["count"] > 0 and proto == "smtp" and quiet
            loads = [make_load(mta, t, sc, name) for t in sc["tenants"] if t["messages"] > 0]
            if use_probes:
                probe = Probe(mta, quiet[0], sc, name)
            t0 = time.time()
            for ld in loads:
                ld.start()
            if probe:
                if sc["kind"] == "noisy-neighbour":
                    time.sleep(sc.get("noisy", {}).get("lead", 3))
                probe.start()
            injected = sum(ld.join() for ld in loads)
            t1 = time.time()
            errs = [e for ld in loads for e in ld.errors]
            if errs:
                log("injection errors: " + " | ".join(errs)[:500])
            if probe:
                # The quiet tenant's probes run to the end; elsewhere they
                # only accompany the load.
                if sc["kind"] != "noisy-neighbour":
                    probe.halt.set()
                probe.join()
            probe_sent = probe.sent if probe else {}
            sent = {}
            for ld in loads:
                sent.update(ld.sent)
            expected = injected + len(probe_sent)
            pred = None
            if sc["kind"] == "noisy-neighbour":
                def pred():
                    ids = {r.get("message_id") for r in sink.records()}
                    return all(m in ids for m in probe_sent)
            complete = wait_done(sink, mta, expected, sc["timeout"], sc["stall"], pred) \
                and not errs
            for ld in loads:
                ld.kill()
        cpu1, hwm = mta.usage()
        sampler.finish()
    finally:
        if mta:
            mta.stop()
        stop(sink.proc)
    outcomes = mta.outcomes() if mta and name != "ceiling" else {}
    recs = [r for r in sink.records() if is_load(r)]
    delivered = len(recs)
    t_last = max((r["time"] for r in recs), default=t1)
    if probe_sent:
        p50, p99, nprobe = latency(probe_sent, recs)
    else:
        p50, p99, nprobe = latency(sent, recs)
    res = {
        "inject": protocol_for(mta, sc),
        "messages": sc["messages"],
        "injected": injected,
        "probes_sent": len(probe_sent),
        "probes_delivered": nprobe if probe_sent else 0,
        "delivered": delivered,
        "bounced": sum(c["bounced"] + c["expired"] for c in outcomes.values()),
        "complete": complete,
        "accepted_per_s": (injected + len(probe_sent)) / max(t1 - t0, 1e-6),
        "delivered_per_s": delivered / max(t_last - t0, 1e-6) if delivered else 0.0,
        "p50_ms": p50,
        "p99_ms": p99,
        "cpu_s_per_1k": (cpu1 - cpu0) / delivered * 1000 if delivered else None,
        "rss_mb": max(hwm, sampler.peak_rss),
        "inject_s": t1 - t0,
        "deliver_s": t_last - t0,
    }
    if sc["kind"] == "noisy-neighbour":
        res["quiet"] = {"alone": extra.pop("alone"),
                        "with_neighbour": {"p50_ms": p50, "p99_ms": p99,
                                           "probes_sent": len(probe_sent),
                                           "probes_delivered": nprobe}}
    if outcomes:
        res["per_provider"] = per_provider(outcomes, recs, sc)
    res.update(extra)
    series = {"t0": t0, "times": [r["time"] for r in recs], "queue": sampler.queue,
              "sessions": sampler.sessions, "recs": recs,
              "schedule": getattr(mta, "schedule", None),
              "clock": clock_origin(mta) if sc["kind"] == "warmup" and isinstance(mta, SluiceSystem)
              else None}
    return res, series


def per_provider(outcomes, recs, sc):
    """Per provider: delivered (the sink's log), deferral attempts and
    bounced recipients (the MTA's own log)."""
    prov = {d: p for d, (_, _, p) in PROVIDER_MX.items()}
    out = defaultdict(Counter)
    for r in recs:
        out[prov.get(r["rcpts"][0].split("@")[1], "other")]["delivered"] += 1
    for dom, c in outcomes.items():
        p = prov.get(dom, "other")
        out[p]["deferred"] += c["deferred"]
        out[p]["bounced"] += c["bounced"] + c["expired"]
    return {p: {"delivered": c["delivered"], "deferred": c["deferred"], "bounced": c["bounced"]}
            for p, c in sorted(out.items())}


# ---------------------------------------------------------------- scenario kinds

def quiet_alone(mta, sink, sc, name):
    """noisy-neighbour: the quiet tenant's probes with nothing else running."""
    quiet = next(t for t in sc["tenants"] if t["probes"])
    probe = Probe(mta, quiet, sc, f"{name}-alone")
    probe.start()
    probe.join()
    ids = set(probe.sent)
    end = time.time() + 60
    while time.time() < end and not ids <= {r.get("message_id") for r in sink.records()}:
        time.sleep(0.2)
    p50, p99, n = latency(probe.sent, sink.records())
    # Those probes are not part of the measured load.
    for r in sink.records():
        if r.get("message_id") in ids:
            r["rcpts"] = [SENDER]
    return {"p50_ms": p50, "p99_ms": p99, "probes_sent": len(probe.sent), "probes_delivered": n}


def run_concurrency(mta, sink, sc, sampler):
    """Hold the tenant, inject everything, note sluiced's RSS with the queue
    full, release it against a tarpitting sink and watch outbound sessions
    climb; memory per connection = RSS growth / peak sessions."""
    tenant = sc["tenants"][0]
    mta.api("POST", f"/v1/tenants/{tenant['name']}/hold", {"reason": "sluice-bench"})
    load = make_load(mta, tenant, sc, mta.name)
    t0 = time.time()
    load.start()
    injected = load.join()
    t1 = time.time()
    time.sleep(1.0)
    rss0 = mta.rss_now()
    sess0 = len(sampler.sessions)
    mta.api("POST", f"/v1/tenants/{tenant['name']}/resume", {"reason": "sluice-bench"})
    c = sc["concurrency"]
    end = time.time() + c.get("timeout", 90)
    peak, peak_t, rss_peak = 0, time.time(), rss0
    while time.time() < end:
        time.sleep(0.5)
        cur = max((s for _, s in sampler.sessions[sess0:]), default=0)
        rss_peak = max(rss_peak, mta.rss_now())
        if cur > peak:
            peak, peak_t = cur, time.time()
        elif peak and time.time() - peak_t > c.get("settle", 5):
            break
    rss_peak = max([rss_peak] + [r for t, r in sampler.rss if t >= t1])
    sink_conns = sink.stat("active_connections")
    res = {"complete": bool(peak) and injected == tenant["messages"] and not load.errors,
           "concurrency": {"peak_connections": int(peak),
                           "bytes_per_connection": int((rss_peak - rss0) * 1048576 / peak)
                           if peak else None,
                           "rss_queued_mb": rss0, "rss_peak_mb": rss_peak,
                           "sink_active_connections": sink_conns,
                           "messages_queued": injected,
                           "seconds_to_peak": peak_t - t1,
                           "fd_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[1]}}
    return res, (t0, t1, injected, load.sent)


def clock_origin(mta):
    m = re.search(r"TEST CLOCK x(\d+) from wall (\d+) ms",
                  (mta.dir / "sluiced.err").read_text(errors="replace"))
    return (int(m.group(2)), int(m.group(1))) if m else None


def curve_cap(curve, day):
    cap = None
    for step in curve:
        if step["day"] <= day:
            cap = step["daily"]
    return cap


def hour_cap(sched, curve, day):
    for step in curve:
        if step["day"] <= day:
            last = step
    if last["daily"] == "unlimited":
        return None
    if "hourly" in last:
        return last["hourly"]
    return -(-int(last["daily"]) // int(sched.get("hourly_spread", 24)))


def warmup_report(series, sc, name):
    """Recount the sink's log per (source IP, provider) per warm-up day and
    hour (test clock: warm = W + (t - W) × S) against the schedule's caps."""
    if not series.get("clock") or not series.get("schedule"):
        return {"error": "no test clock line in sluiced's log"}
    wall, scale = series["clock"]
    sched = series["schedule"]
    warming = {dpdk_ip(sc, ip) if name == "sluice-dpdk" else ip for ip in sc["warmup"]["ips"]}
    prov = {d: p for d, (_, _, p) in PROVIDER_MX.items()}
    per_day, per_hour = Counter(), Counter()
    for r in series["recs"]:
        ip = r["src"]
        p = prov.get(r["rcpts"][0].split("@")[1], "*")
        w = wall + (r["time"] * 1000 - wall) * scale
        per_day[(ip, p, int(w // DAY_MS))] += 1
        per_hour[(ip, p, int(w // HOUR_MS))] += 1
    first_day = int(wall // DAY_MS)
    out = {}
    violations = hour_violations = 0
    for ip in sorted({k[0] for k in per_day}):
        for p in sorted({k[1] for k in per_day if k[0] == ip}):
            curve = sched.get("providers", {}).get(p, sched["default"])
            days = sorted(d for (i, pp, d) in per_day if i == ip and pp == p)
            rows = []
            sending = 0
            for d in range(first_day, max(days) + 1):
                n = per_day.get((ip, p, d), 0)
                sending_day = sending + 1
                cap = curve_cap(curve, sending_day) if ip in warming else None
                cap = None if cap == "unlimited" else cap
                over = cap is not None and n > cap
                violations += over
                rows.append({"day": sending_day, "sent": n, "cap": cap})
                if n:
                    sending += 1
            if ip in warming:
                for (i, pp, h), n in per_hour.items():
                    if i == ip and pp == p:
                        sday = 1 + sum(1 for d in days if d < h * HOUR_MS // DAY_MS)
                        hc = hour_cap(sched, curve, sday)
                        hour_violations += hc is not None and n > hc
            out[f"{ip} {p}"] = {"warming": ip in warming, "days": rows}
    return {"cap_violations": violations, "hour_cap_violations": hour_violations,
            "days": max(len(v["days"]) for v in out.values()) if out else 0,
            "scale": scale, "seconds_per_day": 86400 / scale, "per_ip_provider": out}


# ---------------------------------------------------------------- report

def fmt(v, f):
    return "–" if v is None else format(v, f)


def write_markdown(out, report):
    sc = report["params"]
    lines = [f"# sluice-bench: {report['scenario']}", "",
             report.get("description", "").strip(), "",
             f"{sc['messages']} messages, {sc['sessions']} injection sessions "
             f"({sc['inject']['protocol']}), sizes "
             + ", ".join(f"{s} B ({w:.0%})" for s, w in sc['sizes'])
             + ", domains " + (", ".join(f"{d} ({w:.0%})" for d, w in sc['domains'])
                               if len(sc["domains"]) <= 8 else f"{len(sc['domains'])} domains")
             + f"; {report['host']['cpus']} CPUs, kernel {report['host']['kernel']}, load average "
             f"{report['host']['loadavg_start']:.1f} at the start and "
             f"{report['host']['loadavg_end']:.1f} at the end (other work on the box skews "
             "the numbers).", "",
             "| system | accepted/s | delivered/s | p50 ms | p99 ms | CPU s/1k msgs | peak RSS MiB "
             "| × postfix | × ceiling | complete |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, s in report["systems"].items():
        if "skipped" in s:
            lines.append(f"| {name} | skipped: {s['skipped']} ||||||||| ")
            continue
        lines.append(f"| {name} | {fmt(s['accepted_per_s'], '.0f')} | {fmt(s['delivered_per_s'], '.0f')} "
                     f"| {fmt(s['p50_ms'], '.1f')} | {fmt(s['p99_ms'], '.1f')} "
                     f"| {fmt(s['cpu_s_per_1k'], '.3f')} | {fmt(s['rss_mb'], '.1f')} "
                     f"| {fmt(s['ratio_postfix'], '.2f')} | {fmt(s['ratio_ceiling'], '.2f')} "
                     f"| {'yes' if s['complete'] else 'NO'} |")
    lines += ["", "CPU and RSS are the MTA's processes only (for the ceiling: the sink's); "
              "latency is from the probe messages, or every message when the load gives each "
              "its own Message-ID (see docs/bench.md)."]
    if report["params"]["inject"]["protocol"] == "http":
        lines.append("sluiced gets the load over HTTP (POST /v1/messages); the ceiling and "
                     "Postfix, which have no such API, get the same messages over SMTP.")
    pp = {n: s["per_provider"] for n, s in report["systems"].items() if s.get("per_provider")}
    if pp:
        lines += ["", "## Per provider", "", "| system | provider | delivered | deferrals | bounced |",
                  "|---|---|---:|---:|---:|"]
        for n, d in pp.items():
            for p, c in d.items():
                lines.append(f"| {n} | {p} | {c['delivered']} | {c['deferred']} | {c['bounced']} |")
    nn = {n: s["quiet"] for n, s in report["systems"].items() if s.get("quiet")}
    if nn:
        lines += ["", "## The quiet tenant's latency", "",
                  "| system | alone p50 ms | alone p99 ms | with the neighbour p50 ms | p99 ms "
                  "| probes arrived |", "|---|---:|---:|---:|---:|---:|"]
        for n, q in nn.items():
            a, w = q["alone"], q["with_neighbour"]
            lines.append(f"| {n} | {fmt(a['p50_ms'], '.1f')} | {fmt(a['p99_ms'], '.1f')} "
                         f"| {fmt(w['p50_ms'], '.1f')} | {fmt(w['p99_ms'], '.1f')} "
                         f"| {w['probes_delivered']}/{w['probes_sent']} |")
        lines += ["", "A latency shown as – fell on a probe that had not arrived when the run "
                     "ended (timeout or stall)."]
    for n, s in report["systems"].items():
        if s.get("concurrency"):
            c = s["concurrency"]
            lines += ["", f"## Concurrency ({n})", "",
                      f"peak outbound connections {c['peak_connections']}, "
                      f"{fmt(c['bytes_per_connection'], 'd')} bytes each (RSS {c['rss_queued_mb']:.0f} MiB "
                      f"with {c['messages_queued']} messages queued → {c['rss_peak_mb']:.0f} MiB at the "
                      f"peak), reached in {c['seconds_to_peak']:.1f} s; the sink saw "
                      f"{c['sink_active_connections']} open connections. Descriptor limit per "
                      f"process here: {c['fd_limit']} (sluiced and the sink each need one per "
                      "connection)."]
    if report.get("warmup"):
        w = report["warmup"]
        lines += ["", "## Warm-up", ""]
        if "error" in w:
            lines.append(w["error"])
        else:
            lines.append(f"{w['days']} warm-up days at {w['seconds_per_day']:.1f} s each; "
                         f"daily cap violations: {w['cap_violations']}, hourly: "
                         f"{w['hour_cap_violations']} (hourly counts use the sink's arrival time, "
                         "which lags sluiced's count by the delivery time: a few at hour "
                         "boundaries are expected).")
    lines.append("")
    for p in report.get("plots", []):
        lines.append(f"![{p}]({p})")
    (out / "report.md").write_text("\n".join(lines) + "\n")


def plot(out, series, report):
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
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=100)
    plt.close(fig)
    made.append("throughput.png")
    for key, fname, ylabel, title in (
            ("queue", "queue.png", "messages in queue",
             "Queue depth (sluice: sluice_queue_messages; postfix: queue files)"),
            ("sessions", "sessions.png", "outbound sessions", "sluiced's outbound sessions")):
        if any(s[key] for s in series.values()):
            fig, ax = plt.subplots(figsize=(8, 4.5))
            for name, s in series.items():
                if s[key]:
                    ax.plot([t - s["t0"] for t, _ in s[key]], [q for _, q in s[key]], label=name,
                            color=COLORS.get(name))
            ax.set_xlabel("seconds since injection start")
            ax.set_ylabel(ylabel)
            ax.set_title(title)
            ax.legend()
            ax.grid(alpha=0.3)
            fig.tight_layout()
            fig.savefig(out / fname, dpi=100)
            plt.close(fig)
            made.append(fname)
    if report["params"].get("provider_aware"):
        made += plot_ip_provider(plt, out, series)
    if report.get("warmup", {}).get("per_ip_provider"):
        made += plot_warmup(plt, out, report["warmup"])
    return made


def plot_ip_provider(plt, out, series):
    """Delivery rate per source IP × provider over time, one panel per system."""
    prov = {d: p for d, (_, _, p) in PROVIDER_MX.items()}
    names = [n for n, s in series.items() if s["recs"] and n != "ceiling"]
    if not names:
        return []
    fig, axes = plt.subplots(len(names), 1, figsize=(8, 3.2 * len(names)), squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        s = series[name]
        per = defaultdict(Counter)
        for r in s["recs"]:
            per[(r["src"], prov.get(r["rcpts"][0].split("@")[1], "*"))][int(r["time"] - s["t0"])] += 1
        for (ip, p), c in sorted(per.items()):
            xs = range(max(c) + 1)
            ax.plot(xs, [c.get(x, 0) for x in xs], label=f"{ip} {p}", drawstyle="steps-post")
        ax.set_title(f"{name}: deliveries per second per source IP × provider")
        ax.set_xlabel("seconds since injection start")
        ax.set_ylabel("msgs/s")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "ip_provider.png", dpi=100)
    plt.close(fig)
    return ["ip_provider.png"]


def plot_warmup(plt, out, w):
    """Daily volume per IP × provider against the warming IP's cap curve."""
    provs = sorted({k.split(" ", 1)[1] for k in w["per_ip_provider"]})
    fig, axes = plt.subplots(len(provs), 1, figsize=(8, 3 * len(provs)), squeeze=False)
    for ax, p in zip(axes[:, 0], provs):
        for key, v in sorted(w["per_ip_provider"].items()):
            ip, pp = key.split(" ", 1)
            if pp != p:
                continue
            xs = list(range(1, len(v["days"]) + 1))
            ax.plot(xs, [d["sent"] for d in v["days"]], marker=".",
                    label=f"{ip}{' (warming)' if v['warming'] else ''}")
            if v["warming"]:
                ax.plot([i for i, d in zip(xs, v["days"]) if d["cap"] is not None],
                        [d["cap"] for d in v["days"] if d["cap"] is not None],
                        "k--", label=f"cap for {ip} (sending day)")
        ax.set_yscale("symlog")
        ax.set_title(f"provider {p}: messages per warm-up day")
        ax.set_xlabel("warm-up calendar day of the run")
        ax.set_ylabel("messages")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "warmup.png", dpi=100)
    plt.close(fig)
    return ["warmup.png"]


def start_dns(work):
    """unbound with the test network's zone (tests/dns.conf.in), for the
    provider-aware scenarios' MX names."""
    d = work / "dns"
    d.mkdir()
    conf = (ROOT / "tests/dns.conf.in").read_text().replace("@DIR@", str(d))
    (d / "unbound.conf").write_text(conf)
    p = subprocess.Popen(["/usr/sbin/unbound", "-d", "-c", str(d / "unbound.conf")],
                         stdout=subprocess.DEVNULL, stderr=open(d / "unbound.log", "w"))
    end = time.time() + 10
    while time.time() < end:
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(0.3)
            q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05gmail\x04test\x00\x00\x0f\x00\x01"
            s.sendto(q, (DNS_ADDR, 53))
            if len(s.recv(512)) > 12:
                s.close()
                return p
        except OSError:
            time.sleep(0.1)
    p.kill()
    raise SystemExit("bench: unbound did not answer")


def make_certs(work):
    d = work / "tls"
    d.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30",
                    "-subj", "/CN=sink.test", "-keyout", str(d / "key.pem"),
                    "-out", str(d / "cert.pem")], check=True, capture_output=True)
    return d / "cert.pem", d / "key.pem"


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
    if a.messages:
        os.environ["SLUICE_BENCH_MESSAGES"] = str(a.messages)
    sc = load_scenario(a.scenario)
    if a.messages:
        scale = a.messages / sc["messages"]
        sc["messages"] = a.messages
        for t in sc["tenants"]:
            t["messages"] = max(0 if not t["messages"] else 1, round(t["messages"] * scale))
    systems = a.systems.split(",") if a.systems else list(sc["systems"])
    for s in systems:
        if s not in ALL_SYSTEMS:
            raise SystemExit(f"bench: unknown system '{s}'")
    skipped = {s: "not in this run's systems" for s in ALL_SYSTEMS if s not in systems}
    skipped.update(sc.get("skip", {}))
    if "postfix" in systems and not Path("/usr/sbin/postfix").exists():
        skipped["postfix"] = "postfix is not installed"
    load0 = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="sluice-bench.", dir="/var/tmp"))
    results, series = {}, {}
    dns = None
    try:
        if sc["provider_aware"]:
            dns = start_dns(work)
        certs = make_certs(work) if sc["sink"]["tls"] else None
        for name in ALL_SYSTEMS:
            if name in skipped:
                continue
            try:
                results[name], series[name] = run_system(name, a.build, work, sc, certs)
            except Skip as e:
                log(f"{name}: skipped: {e}")
                skipped[name] = str(e)
    finally:
        if dns:
            dns.terminate()
            dns.wait()
        if os.environ.get("BENCH_KEEP"):
            log(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    pf = results.get("postfix", {}).get("delivered_per_s")
    ce = results.get("ceiling", {}).get("delivered_per_s")
    for s in results.values():
        s["ratio_postfix"] = s["delivered_per_s"] / pf if pf else None
        s["ratio_ceiling"] = s["delivered_per_s"] / ce if ce else None
    systems_out = {}
    for name in ALL_SYSTEMS:
        if name in results:
            systems_out[name] = results[name]
        else:
            systems_out[name] = dict({k: None for k in METRIC_KEYS},
                                     skipped=skipped.get(name, "not run"))
    out = a.results / time.strftime("%Y%m%d-%H%M%S")
    while out.exists():
        out = out.with_name(out.name + "x")
    out.mkdir(parents=True)
    report = {"scenario": sc["name"], "description": sc.get("description", ""),
              "systems": systems_out,
              "params": {"messages": sc["messages"], "sessions": sc["sessions"],
                         "sizes": sc["sizes"], "domains": sc["domains"][:50],
                         "n_domains": len(sc["domains"]),
                         "inject": sc["inject"], "provider_aware": sc["provider_aware"],
                         "tenants": [{k: t[k] for k in ("name", "stream", "messages", "sessions")}
                                     for t in sc["tenants"]],
                         "probes": sc["probes"], "sink_rules": sink_rules(sc, False),
                         "sink_tls": sc["sink"]["tls"]},
              "host": {"cpus": os.cpu_count(), "kernel": os.uname().release,
                       "loadavg_start": load0, "loadavg_end": os.getloadavg()[0]},
              "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    for name in results:
        if "concurrency" in results[name]:
            report.setdefault("concurrency", results[name]["concurrency"])
    if sc["kind"] == "noisy-neighbour":
        report["noisy_neighbour"] = {n: r["quiet"] for n, r in results.items() if "quiet" in r}
    if sc["kind"] == "warmup":
        for name in ("sluice-dpdk", "sluice-uring"):
            if name in series:
                results[name]["warmup"] = warmup_report(series[name], sc, name)
                report["warmup"] = results[name]["warmup"]   # sluice-uring's if it ran
    if not a.no_plots:
        report["plots"] = plot(out, series, report)
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
        log("incomplete (timeout, stall or injection errors): " + ", ".join(bad))
    # A peer cut short by the time limit still has a rate; sluice losing
    # or not delivering mail is a failure.
    return 1 if any(n.startswith("sluice") for n in bad) else 0


if __name__ == "__main__":
    sys.exit(main())
