"""A message acknowledged with 250 survives kill -9: inject with concurrent
clients, kill sluiced mid-run, restart it, and every acknowledged message
reaches the receiver; duplicates stay within what was in flight."""
import collections
import smtplib
import threading
import time

from conftest import message, wait_until

DOMAINS = ["gmail.test", "yahoo.test", "outlook.test", "example.test"]
CLIENTS = 8
PER_CLIENT = 500  # 4000 messages in all
CONNS_PER_DOMAIN = 4


def client(idx, acked, stop):
    n = 0
    while n < PER_CLIENT and not stop.is_set():
        try:
            with smtplib.SMTP("127.0.0.1", 2525, timeout=10) as c:
                c.ehlo("load.test")
                while n < PER_CLIENT and not stop.is_set():
                    dom = DOMAINS[n % len(DOMAINS)]
                    rcpt = f"u{idx}-{n}@{dom}"
                    mid, msg = message("load@acme.test", rcpt, size=4096,
                                       msgid=f"<k9-{idx}-{n}@load.test>")
                    n += 1
                    c.sendmail("load@acme.test", [rcpt], msg)
                    acked.append(mid)  # only after the 250
        except (OSError, smtplib.SMTPException):
            if stop.is_set():
                return
            time.sleep(0.2)  # the daemon is down: try again later


def test_kill9_loses_nothing_acknowledged(sink_factory, sluiced_factory):
    sink = sink_factory()
    d = sluiced_factory(delivery={"max_connections_per_domain": CONNS_PER_DOMAIN,
                                  "retry_schedule": "[1s]"})
    d.start()
    acked, stop = [], threading.Event()
    threads = [threading.Thread(target=client, args=(i, acked, stop)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    wait_until(lambda: len(acked) >= 1200, 120, "1200 acknowledged messages")
    d.kill9()
    killed_at = len(acked)
    seen_at_kill = len(sink.messages())
    time.sleep(0.5)
    d.start()
    for t in threads:
        t.join(180)
    stop.set()
    total = len(acked)
    assert total > killed_at, "clients did not continue after the restart"

    def all_there():
        got = collections.Counter(m["message_id"] for m in sink.messages())
        missing = [m for m in acked if m not in got]
        return got if not missing else None

    try:
        got = wait_until(all_there, 180, "every acknowledged message at the sink")
    except TimeoutError:
        got = collections.Counter(m["message_id"] for m in sink.messages())
        missing = [m for m in acked if m not in got]
        raise AssertionError(f"{len(missing)} of {total} acknowledged messages lost, "
                             f"e.g. {missing[:5]}")
    dups = sum(c - 1 for c in got.values() if c > 1)
    # In flight at the kill: each outbound session holds at most one message
    # whose outcome was not yet committed, plus one commit batch of outcomes.
    bound = CONNS_PER_DOMAIN * len(DOMAINS) * 2 + 64
    print(f"kill -9 after {killed_at} acks ({seen_at_kill} at the sink); "
          f"{total} acked in all; {dups} duplicate deliveries (bound {bound})")
    assert dups <= bound
