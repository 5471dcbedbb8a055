#!/usr/bin/python3
"""wire.py A B [--loss P] [--reorder P] [--delay-ms D] [--stats FILE]

An impaired Ethernet wire between two interfaces, for the dpdk e2e test:
every frame received on one is sent out of the other (AF_PACKET), except
that a fraction P (--loss) is dropped, and frames are held back D ms
unless picked (--reorder, like netem's "reorder P") to go at once, which
overtakes the held ones. Both directions. Runs until SIGTERM; --stats gets
the counts as JSON on exit."""
import argparse
import heapq
import json
import random
import select
import signal
import socket
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--loss", type=float, default=0.0)
    ap.add_argument("--reorder", type=float, default=0.0)
    ap.add_argument("--delay-ms", type=float, default=0.0)
    ap.add_argument("--stats")
    ap.add_argument("--seed", type=int, default=7)
    o = ap.parse_args()
    rnd = random.Random(o.seed)
    socks = {}
    for name in (o.a, o.b):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind((name, 0))
        s.setblocking(False)
        socks[name] = s
    peer = {socks[o.a]: socks[o.b], socks[o.b]: socks[o.a]}
    held = []  # (due, seq, out_sock, frame)
    seq = 0
    st = {"frames": 0, "dropped": 0, "delayed": 0, "immediate": 0}
    running = True

    def stop(*_):
        nonlocal running
        running = False
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while running:
        timeout = max(0.0, held[0][0] - time.monotonic()) if held else 0.2
        try:
            r, _, _ = select.select(list(peer), [], [], timeout)
        except InterruptedError:
            continue
        for s in r:
            while True:
                try:
                    frame, addr = s.recvfrom(65535)
                except (BlockingIOError, InterruptedError):
                    break
                if addr[2] == PACKET_OUTGOING:
                    continue  # our own send, or the kernel's on that side
                st["frames"] += 1
                if rnd.random() < o.loss:
                    st["dropped"] += 1
                    continue
                if o.delay_ms and rnd.random() >= o.reorder:
                    seq += 1
                    heapq.heappush(held, (time.monotonic() + o.delay_ms / 1000, seq, peer[s], frame))
                    st["delayed"] += 1
                else:
                    st["immediate"] += 1
                    try:
                        peer[s].send(frame)
                    except OSError:
                        st["dropped"] += 1
        now = time.monotonic()
        while held and held[0][0] <= now:
            _, _, out, frame = heapq.heappop(held)
            try:
                out.send(frame)
            except OSError:
                st["dropped"] += 1
    if o.stats:
        with open(o.stats, "w") as f:
            json.dump(st, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
