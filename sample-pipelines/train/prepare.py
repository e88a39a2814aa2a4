"""Generate a noisy linear dataset and split it into training and validation sets."""

import argparse
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import read_config, write_json

parser = argparse.ArgumentParser()
parser.add_argument("--config", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()

cfg = read_config(args.config)
rng = random.Random(int(cfg["seed"]))
points = []
for _ in range(int(cfg["samples"])):
    x = rng.uniform(-1, 1)
    points.append([x, cfg["true_weight"] * x + cfg["true_bias"] + rng.gauss(0, cfg["noise"])])
cut = int(len(points) * (1 - cfg["validation_fraction"]))
write_json(os.path.join(args.out, "train.json"), points[:cut])
write_json(os.path.join(args.out, "validation.json"), points[cut:])
print(f"prepared {cut} training and {len(points) - cut} validation points in {args.out}")
