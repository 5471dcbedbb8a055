"""End-to-end fixtures: real sluiced, sluice-sink and unbound processes
talking over real sockets inside the private network namespace that
tests/netns.sh creates (see that file for the address plan)."""
import json
import os
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / os.environ.get("SLUICE_BUILD", "build")
SLUICED = BUILD / "sluiced"
SINK = BUILD / "sluice-sink"
SLUICECTL = BUILD / "sluicectl"

DNS_ADDR = "198.51.100.53"
SOURCE_IPS = ["198.51.100.10", "198.51.100.11"]
MX = {"gmail.test": "203.0.113.25", "yahoo.test": "203.0.113.26",
      "outlook.test": "203.0.113.27", "example.test": "203.0.113.28",
      "acme.test": "203.0.113.29"}
SUBMIT_PORT = 2525
METRICS_PORT = 9025
API_PORT = 8025

# Sanitizer builds: a leak report at exit must not fail a test about mail.
os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=0")


def pytest_configure(config):
    if not os.environ.get("SLUICE_NETNS"):
        raise pytest.UsageError("run the e2e tests through tests/netns.sh (make e2e)")


def wait_port(host, port, timeout=10.0, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{host}:{port} not listening after {timeout}s")


def wait_closed(host, port, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                pass
        except OSError:
            return
        time.sleep(0.02)
    raise TimeoutError(f"{host}:{port} still accepting {timeout}s after its process ended")


def wait_until(pred, timeout=20.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


def dns_query_ok(name="gmail.test", qtype=15):
    q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack(">HH", qtype, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.3)
    try:
        s.sendto(q, (DNS_ADDR, 53))
        r = s.recv(512)
        return len(r) > 12 and struct.unpack(">H", r[6:8])[0] > 0
    except OSError:
        return False
    finally:
        s.close()


@pytest.fixture(scope="session")
def dns(tmp_path_factory):
    d = tmp_path_factory.mktemp("dns")
    conf = (ROOT / "tests/dns.conf.in").read_text().replace("@DIR@", str(d))
    (d / "unbound.conf").write_text(conf)
    p = subprocess.Popen(["/usr/sbin/unbound", "-d", "-c", str(d / "unbound.conf")],
                         stdout=subprocess.DEVNULL, stderr=open(d / "unbound.log", "w"))
    wait_until(dns_query_ok, 10, "unbound to answer")
    yield DNS_ADDR
    p.terminate()
    p.wait(5)


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30",
                    "-subj", "/CN=sluice.test", "-keyout", str(d / "key.pem"),
                    "-out", str(d / "cert.pem")], check=True, capture_output=True)
    return d / "cert.pem", d / "key.pem"


class Sink:
    """A sluice-sink process listening on one or more receiver addresses."""

    def __init__(self, workdir, addrs, rules="", tls=None):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = self.dir / "sink.jsonl"
        self.conn_log = self.dir / "conns.jsonl"
        self.save = self.dir / "eml"
        self.addrs = addrs
        args = [str(SINK), "-q", "-L", str(self.log), "--stats", str(self.dir / "stats.json"),
                "--conn-log", str(self.conn_log),
                "-o", str(self.save)]
        self.save.mkdir(exist_ok=True)
        for a in addrs:
            args += ["-l", a]
        if rules:
            (self.dir / "rules").write_text(rules)
            args += ["-r", str(self.dir / "rules")]
        if tls:
            args += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
        self.proc = subprocess.Popen(args, stderr=open(self.dir / "sink.err", "a"))
        for a in addrs:
            host, port = a.rsplit(":", 1)
            wait_port(host, int(port), proc=self.proc)

    def messages(self):
        if not self.log.exists():
            return []
        out = []
        for line in self.log.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass  # a line being written
        return out

    def connections(self):
        """One dict per ended connection: open, last (the client's last
        bytes), src, dst, messages."""
        if not self.conn_log.exists():
            return []
        out = []
        for line in self.conn_log.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def wait_messages(self, n, timeout=30):
        return wait_until(lambda: len(self.messages()) >= n and self.messages(), timeout,
                          f"{n} message(s) at the sink")

    def stop(self):
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        # The kernel tears an exited process's io_uring down asynchronously,
        # and its listening sockets keep accepting for a moment: wait until
        # they refuse, so a sink started next is the one that answers.
        for a in self.addrs:
            host, port = a.rsplit(":", 1)
            wait_closed(host, int(port))


def yaml_str(s):
    return json.dumps(str(s))


class Sluiced:
    """A sluiced process with its own spool, event log and config."""

    def __init__(self, workdir, tenants=None, routes=None, tls=None, relay=("127.0.0.0/8",),
                 extra="", delivery=None, limits=None, dns=True, pools=None,
                 relay_tenant_pools=None, api=False, inbound=None):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.spool = self.dir / "spool"
        self.events_path = self.dir / "events.jsonl"
        self.conf = self.dir / "sluice.yaml"
        self.port = SUBMIT_PORT
        self.proc = None
        # api=True: a control store and the admin API (api_url, admin_token);
        # api=(cert, key): the API over HTTPS.
        self.api_enabled = api
        self.api_tls = api if isinstance(api, tuple) else None
        self.control = self.dir / "control"
        self.api_url = f"http{'s' if self.api_tls else ''}://127.0.0.1:{API_PORT}"
        lines = ["hostname: sluice.test", "listeners:", "  - name: submission",
                 f"    address: 127.0.0.1:{SUBMIT_PORT}"]
        if tls:
            lines += ["    tls:", f"      cert: {yaml_str(tls[0])}", f"      key: {yaml_str(tls[1])}"]
        if relay:
            lines += ["    relay_networks: [" + ", ".join(relay) + "]",
                      "    relay_tenant: local"]
        if inbound:  # "HOST:PORT" of a listeners[].inbound (needs a bounces: section)
            lines += ["  - name: inbound", f"    address: {inbound}", "    inbound: true"]
        lines += ["tenants:", "  - name: local"]
        for k, v in (relay_tenant_pools or {}).items():
            lines += [f"    {k}: {v}"]
        for t in tenants or []:
            lines += [f"  - name: {t['name']}"]
            for k in ("username", "password_hash", "stream", "pool"):
                if k in t:
                    lines += [f"    {k}: {yaml_str(t[k])}"]
        lines += ["pools:", "  - name: default", "    ips:"]
        for i, ip in enumerate(SOURCE_IPS):
            lines += [f"      - address: {ip}", f"        ehlo: mta{i + 1}.sluice.test"]
        for name, ips in (pools or {}).items():
            lines += [f"  - name: {name}", "    ips:"]
            for ip in ips:
                lines += [f"      - address: {ip}", f"        ehlo: {name}.sluice.test"]
        if routes:
            lines += ["routes:"]
            for dom, hostport in routes.items():
                host, port = hostport.rsplit(":", 1)
                lines += [f"  - domain: {yaml_str(dom)}", f"    host: {host}", f"    port: {port}"]
        d = {"retry_schedule": "[1s, 1s, 2s]", "connect_timeout": "3s", "command_timeout": "10s"}
        d.update(delivery or {})
        lines += ["delivery:"] + [f"  {k}: {v}" for k, v in d.items()]
        if limits:
            lines += ["limits:"] + [f"  {k}: {v}" for k, v in limits.items()]
        lines += ["spool:", f"  path: {yaml_str(self.spool)}", "events:",
                  f"  path: {yaml_str(self.events_path)}",
                  "metrics:", f"  address: 127.0.0.1:{METRICS_PORT}"]
        if dns:
            lines += ["dns:", f"  servers: [{DNS_ADDR}]"]
        if api:
            lines += ["control:", f"  store: {yaml_str(self.control)}", "  api:",
                      f"    address: 127.0.0.1:{API_PORT}"]
            if self.api_tls:
                lines += [f"    tls_cert: {yaml_str(self.api_tls[0])}",
                          f"    tls_key: {yaml_str(self.api_tls[1])}"]
        self.conf.write_text("\n".join(lines) + "\n" + extra)

    def start(self):
        self.err = open(self.dir / "sluiced.err", "a")
        self.proc = subprocess.Popen([str(SLUICED), "-c", str(self.conf)], stderr=self.err)
        wait_port("127.0.0.1", self.port, proc=self.proc)
        if self.api_enabled:
            wait_port("127.0.0.1", API_PORT, proc=self.proc)
        return self

    @property
    def admin_token(self):
        return (self.control / "admin.token").read_text().strip()

    def api(self, method, path, body=None, token=None, raw=None, headers=None):
        """One admin API request: (status, parsed JSON or None)."""
        import http.client
        import ssl
        if self.api_tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            conn = http.client.HTTPSConnection("127.0.0.1", API_PORT, timeout=30, context=ctx)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", API_PORT, timeout=30)
        h = {"Authorization": f"Bearer {token or self.admin_token}"}
        h.update(headers or {})
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        if data is not None:
            h.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, body=data, headers=h)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered (413) before the whole body was sent
        r = conn.getresponse()
        text = r.read()
        conn.close()
        return r.status, (json.loads(text) if text else None)

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def events(self, kind=None):
        if not self.events_path.exists():
            return []
        out = []
        for line in self.events_path.read_text().splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if kind is None or e.get("event") == kind:
                out.append(e)
        return out

    def wait_events(self, kind, n=1, timeout=30):
        return wait_until(lambda: len(self.events(kind)) >= n and self.events(kind), timeout,
                          f"{n} '{kind}' event(s)")

    def metrics(self):
        with socket.create_connection(("127.0.0.1", METRICS_PORT), timeout=3) as s:
            s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            data = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                data += b
        return data.decode()


@pytest.fixture
def sink_factory(tmp_path):
    sinks = []

    def make(addrs=None, rules="", tls=None, name="sink"):
        s = Sink(tmp_path / name, addrs or [f"{ip}:25" for ip in sorted(set(MX.values()))],
                 rules, tls)
        sinks.append(s)
        return s

    yield make
    for s in sinks:
        s.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.rep_call = rep


@pytest.fixture
def sluiced_factory(request, tmp_path, dns):
    procs = []

    def make(**kw):
        s = Sluiced(tmp_path / "sluiced", **kw)
        procs.append(s)
        return s

    yield make
    for p in procs:
        p.stop()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        # Leave the daemon's side of the story in the failure report.
        for p in procs:
            for f in (p.dir / "sluiced.err", p.events_path):
                if f.exists():
                    print(f"--- {f}")
                    print(f.read_text()[-6000:])


def message(frm, to, subject="hello", size=0, msgid=None, extra_headers=""):
    msgid = msgid or f"<{time.time_ns()}.{os.getpid()}@client.test>"
    body = "This is a test.\r\n"
    if size > len(body):
        line = ("x" * 70 + "\r\n")
        body += line * ((size - len(body)) // len(line) + 1)
    return msgid, (f"From: <{frm}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
                   f"Message-ID: {msgid}\r\n{extra_headers}\r\n{body}")
