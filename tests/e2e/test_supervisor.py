"""sluiced under a service manager: sd_notify readiness, watchdog, stopping.

The test plays systemd: it binds the notification socket, starts sluiced with
NOTIFY_SOCKET and WATCHDOG_USEC set, and reads what the daemon reports.
"""
import socket
import time


def read_notifications(sock, until, want):
    """Collect datagrams until `want(list)` holds or `until` passes."""
    got = []
    while time.monotonic() < until and not want(got):
        sock.settimeout(max(0.05, until - time.monotonic()))
        try:
            got.append(sock.recv(4096).decode())
        except socket.timeout:
            break
    return got


def test_ready_watchdog_and_stopping(tmp_path, monkeypatch, sluiced_factory):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # ping every 200 ms
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    d = sluiced_factory().start()

    msgs = read_notifications(sock, time.monotonic() + 10,
                              lambda g: any("READY=1" in m for m in g))
    ready = [m for m in msgs if "READY=1" in m]
    assert ready, f"no READY=1 from sluiced, got {msgs}"
    assert "STATUS=" in ready[0] and "listener" in ready[0]

    pings = read_notifications(sock, time.monotonic() + 10,
                               lambda g: sum("WATCHDOG=1" in m for m in g) >= 3)
    assert sum("WATCHDOG=1" in m for m in pings) >= 3, f"watchdog pings: {pings}"

    assert d.stop() == 0
    tail = read_notifications(sock, time.monotonic() + 5,
                              lambda g: any("STOPPING=1" in m for m in g))
    assert any("STOPPING=1" in m for m in tail), f"no STOPPING=1, got {tail}"
    sock.close()


def test_no_notify_socket_is_silent(sluiced_factory, monkeypatch):
    """Outside systemd nothing is sent and nothing breaks."""
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "400000")
    d = sluiced_factory().start()
    time.sleep(0.5)
    assert d.proc.poll() is None
    assert d.stop() == 0
