#!/usr/bin/python3
"""Inject the demo workload: two tenants submit over SMTP with STARTTLS and
AUTH — acme (transactional) and globex (marketing) — to a mix of provider
domains, from several concurrent connections."""
import argparse
import smtplib
import ssl
import threading
import time

DOMAINS = ["gmail.test", "yahoo.test", "outlook.test", "example.test", "nullmx.test"]
WEIGHTS = [40, 25, 20, 14, 1]


def body(tenant, i, rcpt, size):
    text = f"Hello from {tenant}, message {i}.\r\n"
    pad = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n"
           * (size // 74 + 1))[: max(0, size - len(text))]
    return (f"From: {tenant} <news@{tenant}.test>\r\nTo: <{rcpt}>\r\n"
            f"Subject: {tenant} demo {i}\r\nMessage-ID: <demo-{tenant}-{i}@{tenant}.test>\r\n"
            f"\r\n{text}{pad}")


def pick_domain(i):
    n = i % sum(WEIGHTS)
    for d, w in zip(DOMAINS, WEIGHTS):
        if n < w:
            return d
        n -= w
    return DOMAINS[0]


def run_tenant(tenant, password, count, conns, port, size, results):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ok = [0]
    lock = threading.Lock()

    def worker(w):
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
            c.starttls(context=ctx)
            c.login(tenant, password)
            for i in range(w, count, conns):
                user = "olduser" if i % 50 == 7 else f"user{i}"
                rcpt = f"{user}@{pick_domain(i)}"
                c.sendmail(f"bounces@{tenant}.test", [rcpt], body(tenant, i, rcpt, size))
                with lock:
                    ok[0] += 1

    ts = [threading.Thread(target=worker, args=(w,)) for w in range(conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    results[tenant] = ok[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=2525)
    ap.add_argument("--count", type=int, default=500, help="messages per tenant")
    ap.add_argument("--conns", type=int, default=4, help="connections per tenant")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--password", action="append", default=[], help="TENANT=PASSWORD")
    a = ap.parse_args()
    pw = dict(p.split("=", 1) for p in a.password)
    results, t0 = {}, time.time()
    ts = [threading.Thread(target=run_tenant, args=(t, pw[t], a.count, a.conns, a.port, a.size,
                                                    results)) for t in ("acme", "globex")]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    dt = time.time() - t0
    n = sum(results.values())
    print(f"injected {n} messages ({', '.join(f'{k}: {v}' for k, v in sorted(results.items()))})"
          f" in {dt:.1f}s = {n / dt:.0f} msgs/s, each acknowledged only after the spool commit")


if __name__ == "__main__":
    main()
