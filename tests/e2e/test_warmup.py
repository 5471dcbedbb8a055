"""IP warm-up end to end: sluiced runs its warm-up calendar on the test
clock (warmup.test_clock_scale, allowed by SLUICE_TEST_CLOCK=1), the sink
logs the source IP and time of every message, and the tests recount per
(IP, provider) per warm-up hour and day from that log."""
import json
import os
import re
import smtplib
import subprocess
import time
from collections import Counter

from conftest import ROOT, SLUICECTL, message, wait_until

os.environ["SLUICE_TEST_CLOCK"] = "1"  # sluiced and sluicectl read test configs
HOUR = 3600_000
DAY = 24 * HOUR
PROVIDERS = {"gmail.test": "google", "yahoo.test": "yahoo", "outlook.test": "microsoft"}


def warm_config(tmp_path, schedules, ips, pools=None, scale=7200):
    f = tmp_path / "warmup.yaml"
    lines = ["schedules:"] + ["  " + l for l in schedules.strip().splitlines()]
    lines += ["pools:"] + [f"  {p}: {{overflow: {o}}}" for p, o in (pools or {}).items()]
    if not pools:
        lines[-1] = "pools: {}"
    lines += ["ips:"] + [f'  "{ip}": {{schedule: {s}, start: 2020-01-01}}'
                         for ip, s in ips.items()]
    f.write_text("\n".join(lines) + "\n")
    return (f"shaping:\n  providers: \"{ROOT / 'configs/providers.conf'}\"\n"
            f"warmup:\n  schedules: \"{f}\"\n  test_clock_scale: {scale}\n")


def send(rcpts):
    with smtplib.SMTP("127.0.0.1", 2525, timeout=10) as c:
        for r in rcpts:
            _, msg = message("a@acme.test", r)
            c.sendmail("a@acme.test", [r], msg)


def clock_origin(d):
    """(wall ms, scale) the daemon's warm-up clock started from."""
    def find():
        m = re.search(r"TEST CLOCK x(\d+) from wall (\d+) ms",
                      (d.dir / "sluiced.err").read_text())
        return m and (int(m.group(2)), int(m.group(1)))
    return wait_until(find, 5, "the test clock line")


def recount(sink, origin):
    """Counter((ip, provider, day)) and Counter((ip, provider, hour)) of the
    sink's messages on the daemon's warm-up clock."""
    wall, scale = origin
    per_day, per_hour = Counter(), Counter()
    for m in sink.messages():
        ip = m["src"].rsplit(":", 1)[0] if m["src"].count(":") == 1 else m["src"]
        dom = m["rcpts"][0].split("@")[1]
        t = wall + (m["time"] * 1000 - wall) * scale
        per_day[(ip, PROVIDERS.get(dom, "*"), int(t // DAY))] += 1
        per_hour[(ip, PROVIDERS.get(dom, "*"), int(t // HOUR))] += 1
    return per_day, per_hour


def ctl(d, *args):
    r = subprocess.run([str(SLUICECTL), "warmup", *args, "-c", str(d.conf)],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return r.stdout


def status(d):
    return {(s["ip"], s["provider"]): s for s in json.loads(ctl(d, "status", "--json"))}


def src_ips(sink, domain):
    return Counter(m["src"].split(":")[0] for m in sink.messages()
                   if m["rcpts"][0].endswith("@" + domain))


CAPS = """\
tiny:
  hourly_spread: 24
  default:
    - {day: 1, daily: 6, hourly: 3}
    - {day: 2, daily: 12, hourly: 6}
    - {day: 3, daily: unlimited}
"""


def test_caps_per_hour_and_day_hold(tmp_path, sink_factory, sluiced_factory):
    """Two warming IPs, overflow wait: 20 messages for Gmail go out over two
    warm-up days, never more than the caps per IP per hour and per day, and
    the held mail waits (no deferral, no bounce)."""
    sink = sink_factory()
    extra = warm_config(tmp_path, CAPS, {"198.51.100.10": "tiny", "198.51.100.11": "tiny"},
                        {"default": "wait"})
    d = sluiced_factory(extra=extra).start()
    origin = clock_origin(d)
    send([f"u{i}@gmail.test" for i in range(20)])
    sink.wait_messages(20, timeout=90)
    per_day, per_hour = recount(sink, origin)
    days = sorted({k[2] for k in per_day})
    caps = {days[0]: (6, 3), days[-1]: (12, 6)}  # sending day 1, 2
    assert len(days) == 2, per_day
    for (ip, prov, day), n in per_day.items():
        assert n <= caps[day][0], (ip, day, n)
    for (ip, prov, hour), n in per_hour.items():
        assert n <= caps[hour * HOUR // DAY][1], (ip, hour, n)
    # Day 1 is used to the cap on both IPs; the rest went on day 2.
    assert sum(n for k, n in per_day.items() if k[2] == days[0]) == 12
    assert not d.events("deferred") and not d.events("bounced")
    # Day 2 carried the other 8: 4 per IP.
    key = ("198.51.100.10", "google")
    st = wait_until(lambda: status(d)[key]["day"] == 2 and status(d), 10, "the saved state")
    assert st[key]["cap_today"] == 12 and st[key]["cap_hour"] == 6
    assert st[key]["sent_today"] == 4 and st[key]["state"] == "warming"


SPILL = """\
ramp:
  hourly_spread: 24
  default:
    - {day: 1, daily: 4, hourly: 4}
    - {day: 2, daily: 100, hourly: 100}
"""


def test_spill_to_warm_ip_then_stop(tmp_path, sink_factory, sluiced_factory):
    """.11 warms up, .10 is warm; overflow spill. On day 1 .11 sends its 4
    and the rest spills to .10; on day 2 .11's cap covers everything and the
    spill stops."""
    sink = sink_factory()
    extra = warm_config(tmp_path, SPILL, {"198.51.100.11": "ramp"}, {"default": "spill"})
    d = sluiced_factory(extra=extra).start()
    origin = clock_origin(d)
    send([f"a{i}@gmail.test" for i in range(10)])
    sink.wait_messages(10, timeout=30)
    first = src_ips(sink, "gmail.test")
    assert first["198.51.100.11"] == 4 and first["198.51.100.10"] == 6, first
    wait_until(lambda: status(d).get(("198.51.100.11", "google"), {}).get("day") == 2, 30,
               "sending day 2")
    send([f"b{i}@gmail.test" for i in range(10)])
    sink.wait_messages(20, timeout=30)
    second = src_ips(sink, "gmail.test") - first
    assert second == Counter({"198.51.100.11": 10}), second
    per_day, _ = recount(sink, origin)
    assert max(n for (ip, p, day), n in per_day.items() if ip == "198.51.100.11") <= 100


BIG = """\
big:
  default:
    - {day: 1, daily: 1000, hourly: 1000}
"""


def test_pause_stops_one_ip_for_one_provider(tmp_path, sink_factory, sluiced_factory):
    sink = sink_factory()
    extra = warm_config(tmp_path, BIG, {"198.51.100.10": "big", "198.51.100.11": "big"},
                        {"default": "wait"})
    d = sluiced_factory(extra=extra, delivery={"max_messages_per_connection": 1}).start()
    ctl(d, "pause", "--ip", "198.51.100.10", "--provider", "google", "--reason", "test")
    wait_until(lambda: status(d).get(("198.51.100.10", "google"), {}).get("state") == "paused",
               10, "the pause to be applied")
    send([f"p{i}@gmail.test" for i in range(6)] + [f"p{i}@yahoo.test" for i in range(6)])
    sink.wait_messages(12, timeout=30)
    assert src_ips(sink, "gmail.test") == Counter({"198.51.100.11": 6})
    assert src_ips(sink, "yahoo.test")["198.51.100.10"] >= 1
    ctl(d, "resume", "--ip", "198.51.100.10", "--provider", "google")
    wait_until(lambda: status(d)[("198.51.100.10", "google")]["state"] == "warming", 10,
               "the resume")
    send([f"q{i}@gmail.test" for i in range(6)])
    sink.wait_messages(18, timeout=30)
    assert src_ips(sink, "gmail.test")["198.51.100.10"] >= 1


SMALL = """\
small:
  default:
    - {day: 1, daily: 5, hourly: 5}
    - {day: 2, daily: 100, hourly: 100}
"""


def test_state_survives_restart_and_jump(tmp_path, sink_factory, sluiced_factory):
    """Real-time clock: 3 sent, restart, 4 more offered: only 2 go (the day's
    cap is 5 across the restart) and 2 wait; a jump to day 2 releases them."""
    sink = sink_factory()
    extra = warm_config(tmp_path, SMALL, {"198.51.100.12": "small"}, {"w1": "wait"}, scale=1)
    d = sluiced_factory(extra=extra, pools={"w1": ["198.51.100.12"]},
                        relay_tenant_pools={"pool": "w1"}).start()
    send([f"r{i}@outlook.test" for i in range(3)])
    sink.wait_messages(3, timeout=30)
    assert d.stop() == 0
    d.start()
    send([f"s{i}@outlook.test" for i in range(4)])
    sink.wait_messages(5, timeout=30)
    time.sleep(1.5)
    assert len(sink.messages()) == 5
    st = wait_until(lambda: status(d)[("198.51.100.12", "microsoft")]["sent_today"] == 5
                    and status(d), 10, "the saved state")
    assert st[("198.51.100.12", "microsoft")]["cap_today"] == 5
    assert not d.events("deferred") and not d.events("bounced")
    ctl(d, "jump", "--ip", "198.51.100.12", "--provider", "microsoft", "--day", "2")
    sink.wait_messages(7, timeout=30)
    assert set(src_ips(sink, "outlook.test")) == {"198.51.100.12"}


def test_bad_schedule_file_is_a_config_error(tmp_path):
    f = tmp_path / "warmup.yaml"
    f.write_text("schedules:\n  s:\n    default:\n      - {day: 1, daily: lots}\n")
    conf = tmp_path / "sluice.yaml"
    conf.write_text("pools:\n  - name: p\n    ips:\n      - {address: 198.51.100.10, ehlo: a.test}\n"
                    f"warmup:\n  schedules: \"{f}\"\n")
    r = subprocess.run([str(ROOT / "build/sluiced"), "-n", "-c", str(conf)],
                       capture_output=True, text=True)
    assert r.returncode == 78 and f"{f}:4:" in r.stderr, r.stderr
