"""Copy the best model out with its provenance: which commit produced it, and how well it did."""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import read_json, write_json

parser = argparse.ArgumentParser()
parser.add_argument("--model", required=True)
parser.add_argument("--validation-loss", type=float, required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--commit", default="")
args = parser.parse_args()

model = read_json(os.path.join(args.model, "model.json"))
model.update(commit=args.commit or "(not from a commit)", validation_loss=args.validation_loss)
write_json(os.path.join(args.out, "model.json"), model)
print(f"exported the model trained with lr={model['lr']} to {args.out}")
