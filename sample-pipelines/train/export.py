"""Copy the best model out with its provenance: which commit produced it."""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import read_json, write_json

parser = argparse.ArgumentParser()
parser.add_argument("--evaluation", required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--commit", default="")
args = parser.parse_args()

evaluation = read_json(args.evaluation)
models_dir = os.path.join(os.path.dirname(args.evaluation), "models")
model = read_json(os.path.join(models_dir, evaluation["best"], "model.json"))
model.update(commit=args.commit or "(not from a commit)", validation_loss=evaluation["scores"][evaluation["best"]])
write_json(os.path.join(args.out, "model.json"), model)
print(f"exported {evaluation['best']} to {args.out}")
