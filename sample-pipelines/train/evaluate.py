"""Score every trained model on the validation set and pick the best."""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import read_json, write_json

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
parser.add_argument("--models", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()

points = read_json(os.path.join(args.data, "validation.json"))
scores = {}
for name in sorted(os.listdir(args.models)):
    model = read_json(os.path.join(args.models, name, "model.json"))
    scores[name] = sum((model["w"] * x + model["b"] - y) ** 2 for x, y in points) / len(points)
    print(f"{name}: validation loss {scores[name]:.4f}")
best = min(scores, key=scores.get)
write_json(args.out, {"scores": scores, "best": best})
print(f"best model: {best}")
