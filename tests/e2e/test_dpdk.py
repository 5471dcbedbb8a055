"""The dpdk transport end to end: a pool whose source IPs belong to a DPDK
port (net_tap, no hugepages) delivers to sluice-sink on kernel TCP, through
sluice's own TCP/IP stack, first over a clean wire and then over an impaired
one (loss, reordering, delay) in both directions.

Topology, inside the namespace tests/netns.sh makes:

    sluiced --(net_tap PMD)-- sltap0 [kernel]  198.51.100.1/24
      DPDK port owns 198.51.100.20, .21;  gateway 198.51.100.1
      sinks 203.0.113.25.. on lo, reached through the kernel's routing

The impaired wire puts a userspace bridge between the TAP and the kernel
(tests/e2e/wire.py): sltap0 carries no address, the kernel's side of the
link is a veth pair (slveth1 holds 198.51.100.1), and the bridge copies
frames between sltap0 and slveth0, dropping, delaying and reordering them.
(The kernels these tests run on may lack sch_netem; the bridge needs
nothing but AF_PACKET.)

If no TAP can be made the tests skip loudly, and `make test-dpdk` exits 77.
"""
import os
import re
import shutil
import smtplib
import subprocess
import sys
import time

import pytest

from conftest import MX, ROOT, message, wait_until

DPDK_IPS = ["198.51.100.20", "198.51.100.21"]
GATEWAY = "198.51.100.1"
TAP = "sltap0"
N_CLEAN = 200
N_IMPAIRED = 100


def sh(*cmd, check=True):
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


@pytest.fixture(scope="module", autouse=True)
def tap_possible():
    """A TAP device can be made here (the net_tap PMD needs /dev/net/tun)."""
    why = None
    if not os.path.exists("/dev/net/tun"):
        why = "/dev/net/tun is missing"
    else:
        r = sh("ip", "tuntap", "add", "dev", "slprobe0", "mode", "tap", check=False)
        if r.returncode != 0:
            why = f"cannot create a TAP device: {r.stderr.strip()}"
        else:
            sh("ip", "link", "del", "slprobe0", check=False)
    if why:
        pytest.skip(f"!!! DPDK TRANSPORT NOT TESTED: {why} !!!")


def dpdk_yaml(idle_sleep=None, capture=None, workers=None):
    # With workers: the loop's lcore plus one per worker, all floating over
    # the CPUs there are (the test box may have only two).
    lcores = ["-l", "0"] if not workers else [f"--lcores=(0-{workers})@(0-{os.cpu_count() - 1})"]
    eal = ["--no-huge", "--no-pci", "-m", "256", "--no-shconf", "--no-telemetry",
           *lcores, f"--file-prefix=sluice{os.getpid()}",
           f"--vdev=net_tap0,iface={TAP}",
           "--log-level=pmd.net.tap:error"]
    lines = ["dpdk:", "  eal_args: [" + ", ".join(f'"{a}"' for a in eal) + "]",
             f"  gateway: {GATEWAY}", "  prefix_len: 24", "  mbufs: 4095",
             "  rx_descriptors: 512", "  tx_descriptors: 512"]
    if idle_sleep:
        lines.append(f"  idle_sleep: {idle_sleep}")
    if capture:
        lines.append(f"  capture: {capture}")
    if workers:
        lines.append(f"  workers: {workers}")
    return "\n".join(lines) + "\n"


def make_sluiced(sluiced_factory, pool_for_local="fast", **kw):
    """sluiced with pool `fast` on the DPDK port; the relay tenant's mail goes
    to pool_for_local (a stream can pick the other pool, see bench)."""
    tenant_pools = kw.pop("relay_tenant_pools", {"pool": pool_for_local})
    d = sluiced_factory(pools={"fast": DPDK_IPS}, relay_tenant_pools=tenant_pools,
                        extra=dpdk_yaml(**kw.pop("dpdk", {})),
                        delivery={"retry_schedule": "[1s, 1s, 2s]", "connect_timeout": "5s",
                                  "command_timeout": "20s"}, **kw)
    text = d.conf.read_text().replace("  - name: fast\n",
                                      "  - name: fast\n    transport: dpdk\n")
    d.conf.write_text(text)
    return d


def start_dpdk(d):
    """Start sluiced; skip loudly if EAL found no port."""
    try:
        d.start()
    except (RuntimeError, TimeoutError):
        err = (d.dir / "sluiced.err").read_text()
        if "dpdk: no ports" in err or "EAL initialisation failed" in err:
            pytest.skip(f"!!! DPDK TRANSPORT NOT TESTED: sluiced could not make the TAP port:"
                        f" {err[-400:]} !!!")
        raise
    wait_until(lambda: os.path.exists(f"/sys/class/net/{TAP}"), 10, f"{TAP} to appear")
    return d


def kernel_side_direct():
    """The kernel end of the TAP holds the gateway address."""
    sh("ip", "addr", "add", f"{GATEWAY}/24", "dev", TAP)
    sh("ip", "link", "set", TAP, "up")
    # Frames the kernel sends into the TAP must carry full checksums.
    sh("ethtool", "-K", TAP, "tx", "off", check=False)


def send_many(n, rcpt_dom="gmail.test", size=4096, stream=None, tag="m"):
    ids = []
    extra = f"X-Sluice-Stream: {stream}\r\n" if stream else ""
    with smtplib.SMTP("127.0.0.1", 2525, timeout=30) as c:
        c.ehlo("client.test")
        for i in range(n):
            mid, msg = message("news@acme.test", f"user{i}@{rcpt_dom}", subject=f"{tag}{i}",
                               size=size, msgid=f"<{tag}{i}.{time.time_ns()}@client.test>",
                               extra_headers=extra)
            c.sendmail("news@acme.test", [f"user{i}@{rcpt_dom}"], msg)
            ids.append(mid)
    return ids


def assert_exactly_once(sink, ids, srcs):
    got = sink.wait_messages(len(ids), timeout=120)
    by_id = {}
    for m in got:
        by_id.setdefault(m["message_id"], []).append(m)
    missing = [i for i in ids if i not in by_id]
    dups = {i: len(v) for i, v in by_id.items() if len(v) > 1}
    assert not missing, f"{len(missing)} message(s) never delivered, e.g. {missing[:3]}"
    assert not dups, f"delivered more than once: {dups}"
    for i in ids:
        assert by_id[i][0]["src"] in srcs, by_id[i][0]


def metric(text, name, labels=None):
    total = 0
    pat = re.compile(r"^" + re.escape(name) + r"(\{[^}]*\})? (\S+)$", re.M)
    for lab, val in pat.findall(text):
        if labels is None or labels in lab:
            total += float(val)
    return total


def test_dpdk_pool_delivers_exactly_once(tmp_path, sink_factory, sluiced_factory):
    sink = sink_factory()
    cap = tmp_path / "dpdk.pcap"
    d = start_dpdk(make_sluiced(sluiced_factory, dpdk={"capture": cap}))
    kernel_side_direct()
    ids = send_many(N_CLEAN)
    assert_exactly_once(sink, ids, DPDK_IPS)
    assert all(e["source_ip"] in DPDK_IPS for e in d.wait_events("delivered", N_CLEAN))
    m = d.metrics()
    assert metric(m, "sluice_dpdk_tx_packets_total") > 0
    assert metric(m, "sluice_dpdk_rx_packets_total") > 0
    assert metric(m, "sluice_netstack_tcp_connections_total", 'outcome="established"') > 0
    assert metric(m, "sluice_netstack_rx_drops_total", 'reason="checksum"') == 0
    print("retransmits:", metric(m, "sluice_netstack_tcp_retransmits_total"),
          "rto:", metric(m, "sluice_netstack_tcp_rto_timeouts_total"))
    # The capture is a pcap file with frames both ways.
    assert d.stop() == 0
    data = cap.read_bytes()
    assert data[:4] == bytes.fromhex("d4c3b2a1") and len(data) > 24 + 16 * 10


@pytest.mark.parametrize("workers", [None, 2], ids=["in_loop", "workers2"])
def test_dpdk_pool_over_lossy_reordering_wire(tmp_path, sink_factory, sluiced_factory, workers):
    sink = sink_factory()
    d = start_dpdk(make_sluiced(sluiced_factory,
                                dpdk={"workers": workers, "idle_sleep": "1ms"} if workers else {}))
    # Kernel end: a veth pair; the TAP is only a wire into the bridge.
    sh("ip", "link", "add", "slveth0", "type", "veth", "peer", "name", "slveth1")
    for dev in (TAP, "slveth0"):
        sh("ip", "link", "set", dev, "arp", "off", "up")
    sh("ip", "addr", "add", f"{GATEWAY}/24", "dev", "slveth1")
    sh("ip", "link", "set", "slveth1", "up")
    for dev in ("slveth1", TAP):  # AF_PACKET sees unfinished checksums otherwise
        sh("ethtool", "-K", dev, "tx", "off", check=False)
    stats = tmp_path / "wire.json"
    wire = subprocess.Popen([sys.executable, str(ROOT / "tests/e2e/wire.py"), TAP, "slveth0",
                             "--loss", "0.02", "--reorder", "0.25", "--delay-ms", "5",
                             "--stats", str(stats)], stderr=open(tmp_path / "wire.err", "w"))
    try:
        time.sleep(0.3)
        assert wire.poll() is None, (tmp_path / "wire.err").read_text()
        # Small messages (a few segments each) and a few large ones, whose
        # windows are big enough for fast retransmit and recovery.
        ids = send_many(N_IMPAIRED, tag="lossy") + send_many(5, size=512 * 1024, tag="big")
        assert_exactly_once(sink, ids, DPDK_IPS)
        # The large bodies arrived intact, byte for byte.
        body = message("a@b", "c@d", size=512 * 1024)[1].split("\r\n\r\n", 1)[1]
        big = [p.read_bytes() for p in sink.save.glob("*.eml")
               if b"<big" in p.read_bytes()[:4096]]
        assert len(big) == 5 and all(b.endswith(body.encode()) for b in big)
        m = d.metrics()
    finally:
        wire.terminate()
        wire.wait(5)
        sh("ip", "link", "del", "slveth0", check=False)
    assert d.stop() == 0
    print(f"wire: {stats.read_text() if stats.exists() else '?'}")
    print("retransmits:", metric(m, "sluice_netstack_tcp_retransmits_total"),
          "rto:", metric(m, "sluice_netstack_tcp_rto_timeouts_total"),
          "fast:", metric(m, "sluice_netstack_tcp_fast_retransmits_total"))
    # The wire dropped frames, so the stack must have recovered some.
    assert metric(m, "sluice_netstack_tcp_retransmits_total") > 0
    if workers:
        assert_workers_carried(m, workers)


def assert_workers_carried(m, workers):
    """Every worker opened connections; per-worker series are exported."""
    for w in range(workers):
        lab = f'worker="{w}"'
        print(f"worker {w}: conns", metric(m, "sluice_dpdk_worker_connections_total", lab),
              "rx", metric(m, "sluice_dpdk_worker_rx_packets_total", lab),
              "tx", metric(m, "sluice_dpdk_worker_tx_packets_total", lab),
              "handovers", metric(m, "sluice_dpdk_worker_handovers_total", lab),
              "retransmits", metric(m, "sluice_dpdk_worker_retransmits_total", lab))
        assert metric(m, "sluice_dpdk_worker_connections_total", lab) > 0, lab
        assert metric(m, "sluice_dpdk_worker_rx_packets_total", lab) > 0, lab
        assert metric(m, "sluice_dpdk_worker_tx_packets_total", lab) > 0, lab
        assert re.search(r"^sluice_dpdk_worker_handovers_total\{" + re.escape(lab), m, re.M)


def test_dpdk_workers_deliver_exactly_once(sink_factory, sluiced_factory):
    """dpdk.workers: 2 — two worker lcores, two queue pairs on the TAP
    (multi-queue tun), one stack each; sessions stay on the loop thread."""
    sink = sink_factory()
    d = start_dpdk(make_sluiced(sluiced_factory, dpdk={"workers": 2, "idle_sleep": "1ms"}))
    kernel_side_direct()
    log = (d.dir / "sluiced.err").read_text()
    assert "2 worker lcore(s)" in log
    print([line for line in log.splitlines() if "worker lcore" in line])
    ids = send_many(N_CLEAN, tag="wk")
    assert_exactly_once(sink, ids, DPDK_IPS)
    time.sleep(0.6)  # one metrics refresh after the last delivery
    m = d.metrics()
    assert metric(m, "sluice_netstack_tcp_connections_total", 'outcome="established"') > 0
    assert_workers_carried(m, 2)
    assert d.stop() == 0


@pytest.mark.skipif(not os.environ.get("SLUICE_DPDK_BENCH"),
                    reason="a measurement, not a test: SLUICE_DPDK_BENCH=1 make test-dpdk")
def test_dpdk_vs_uring_side_by_side(tmp_path, sink_factory, sluiced_factory):
    """Messages/s and CPU per message of a uring pool and a dpdk pool in the
    same sluiced, one after the other, same sink and sizes: smtp-source
    into listener 2525 (relay tenant on pool default, kernel TCP) then 2526
    (tenant on pool fast, DPDK). Prints; asserts only delivery.
    SLUICE_DPDK_BENCH_WORKERS=N runs the dpdk pool on N worker lcores."""
    if not shutil.which("smtp-source"):
        pytest.skip("smtp-source (postfix) not installed")
    n = int(os.environ.get("SLUICE_DPDK_BENCH_N", "5000"))
    size = int(os.environ.get("SLUICE_DPDK_BENCH_SIZE", "4096"))
    idle = os.environ.get("SLUICE_DPDK_BENCH_IDLE_SLEEP")
    workers = int(os.environ.get("SLUICE_DPDK_BENCH_WORKERS", "0")) or None
    sink = sink_factory()
    d = make_sluiced(sluiced_factory, pool_for_local="default",
                     dpdk={"idle_sleep": idle, "workers": workers},
                     limits={"max_message_size": "1M"})
    text = d.conf.read_text()
    text = text.replace("tenants:\n", "  - name: fastlane\n    address: 127.0.0.1:2526\n"
                        "    relay_networks: [127.0.0.0/8]\n    relay_tenant: fastt\n"
                        "tenants:\n  - name: fastt\n    pool: fast\n", 1)
    d.conf.write_text(text)
    start_dpdk(d)
    kernel_side_direct()
    results = {}
    for name, port, srcs in (("uring", 2525, {"198.51.100.10", "198.51.100.11"}),
                             ("dpdk", 2526, set(DPDK_IPS))):
        before = len(sink.messages())
        cpu0 = cpu_seconds(d.proc.pid)
        t0 = time.monotonic()
        subprocess.run(["smtp-source", "-d", "-l", str(size), "-m", str(n), "-s", "16",
                        "-M", "client.test", "-f", "news@acme.test", "-t",
                        f"user@gmail.test", f"127.0.0.1:{port}"], check=True, timeout=600,
                       stdout=subprocess.DEVNULL)
        t_acc = time.monotonic() - t0
        wait_until(lambda: len(sink.messages()) >= before + n, 600, f"{n} via {name}")
        dt = time.monotonic() - t0
        cpu = cpu_seconds(d.proc.pid) - cpu0
        results[name] = (n / dt, cpu / n * 1e6, dt, cpu, t_acc)
        got = sink.messages()[before:]
        assert {m["src"] for m in got} <= srcs
    for name, (rate, us, dt, cpu, t_acc) in results.items():
        print(f"BENCH {name} (workers {workers or 0}): {n} msgs x {size} B accepted in {t_acc:.2f}s, delivered in "
              f"{dt:.2f}s = {rate:.0f} msg/s; sluiced CPU {cpu:.2f}s = {us:.0f} us/msg")
    print("BENCH metrics:", {k: metric(d.metrics(), k) for k in (
        "sluice_netstack_tcp_retransmits_total", "sluice_dpdk_tx_dropped_total",
        "sluice_dpdk_rx_missed_total", "sluice_egress_connections_total")})


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
