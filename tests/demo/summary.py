#!/usr/bin/python3
"""Summarise sluiced's JSON-lines event log: outcomes per tenant, per
source IP and per destination domain."""
import collections
import json
import sys

KINDS = ["delivered", "deferred", "bounced", "expired"]


def table(title, rows):
    print(f"\n{title}")
    print(f"  {'':28}" + "".join(f"{k:>11}" for k in KINDS))
    for key in sorted(rows):
        print(f"  {key:28}" + "".join(f"{rows[key].get(k, 0):>11}" for k in KINDS))


def main(path):
    by = {"tenant / stream": collections.defaultdict(collections.Counter),
          "source IP": collections.defaultdict(collections.Counter),
          "destination domain": collections.defaultdict(collections.Counter)}
    first = last = None
    reasons = collections.Counter()
    with open(path) as f:
        for line in f:
            e = json.loads(line)
            k = e.get("event")
            if k not in KINDS:
                continue
            by["tenant / stream"][f"{e.get('tenant')} / {e.get('stream')}"][k] += 1
            if e.get("source_ip"):
                by["source IP"][e["source_ip"]][k] += 1
            by["destination domain"][e.get("domain", "?")][k] += 1
            if k != "delivered":
                reasons[f"{k}: {e.get('response', '')[:70]}"] += 1
    for title, rows in by.items():
        table(f"Outcomes per {title}", rows)
    if reasons:
        print("\nMost common non-delivery responses")
        for r, n in reasons.most_common(6):
            print(f"  {n:6}  {r}")


if __name__ == "__main__":
    main(sys.argv[1])
