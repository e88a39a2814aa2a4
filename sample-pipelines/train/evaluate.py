"""Score every model of the sweep on the validation set, keep the best, and report its loss and learning rate.

`--models` is the value of `${tasks.train.artifacts.model}` for a sweep: a JSON list with one entry per member,
`{"task": "train-lr-0-1", "matrix": {"lr": 0.1}, "value": "<path of that member's model>"}`.
"""

import argparse
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import read_json, write_json

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
parser.add_argument("--models", required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--results", required=True, help="the task's ${RESULTS_PATH}")
args = parser.parse_args()

points = read_json(os.path.join(args.data, "validation.json"))
scores = {}
for member in json.loads(args.models):
    model = read_json(os.path.join(member["value"], "model.json"))
    scores[member["task"]] = (sum((model["w"] * x + model["b"] - y) ** 2 for x, y in points) / len(points), member)
    print(f"{member['task']}: validation loss {scores[member['task']][0]:.4f}")
best = min(scores, key=lambda task: scores[task][0])
loss, member = scores[best]
shutil.copytree(member["value"], args.out)
write_json(os.path.join(args.results, "results.json"), {"validation_loss": loss, "best_lr": member["matrix"]["lr"]})
print(f"best model: {best}")
