"""Fit y = w*x + b by gradient descent; write the model (an artifact) and its training loss (a result)."""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import read_json, write_json

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--epochs", type=int, required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--results", required=True, help="the task's ${RESULTS_PATH}")
args = parser.parse_args()

points = read_json(os.path.join(args.data, "train.json"))
w = b = 0.0
n = len(points)
for epoch in range(args.epochs):
    gw = sum((w * x + b - y) * x for x, y in points) * 2 / n
    gb = sum((w * x + b - y) for x, y in points) * 2 / n
    w, b = w - args.lr * gw, b - args.lr * gb
    if epoch % 50 == 0:
        loss = sum((w * x + b - y) ** 2 for x, y in points) / n
        print(f"epoch {epoch}: loss {loss:.4f}")
loss = sum((w * x + b - y) ** 2 for x, y in points) / n
write_json(os.path.join(args.out, "model.json"), {"w": w, "b": b, "lr": args.lr, "train_loss": loss})
os.makedirs(args.results, exist_ok=True)
with open(os.path.join(args.results, "train_loss"), "w") as f:  # one result, one file: its text is the value
    f.write(f"{loss}\n")
print(f"lr={args.lr}: w={w:.3f} b={b:.3f} train loss {loss:.4f}")
