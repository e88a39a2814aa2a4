"""Count events per user for one day (a stand-in for a real feature job)."""

import argparse
import csv
import sys
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--day")
parser.add_argument("--out")
parser.add_argument("--check")
args = parser.parse_args()

if args.check:
    with Path(args.check).open() as f:
        rows = list(csv.reader(f))
    print(f"{len(rows) - 1} feature rows")
    sys.exit(0 if len(rows) > 1 else 1)

counts: dict[str, int] = {}
for path in sorted(Path("/data/raw", args.day).glob("*.csv")):
    with path.open() as events:
        for user, *_ in csv.reader(events):
            counts[user] = counts.get(user, 0) + 1
Path(args.out).parent.mkdir(parents=True, exist_ok=True)
with Path(args.out).open("w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["user", "events"])
    writer.writerows(sorted(counts.items()))
