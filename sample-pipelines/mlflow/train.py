"""Fit y = 3x + 1 by gradient descent, logging the loss curve to MLflow when Odin tracks the run.

Odin sets MLFLOW_RUN_ID (with MLFLOW_TRACKING_URI and MLFLOW_EXPERIMENT_ID) when its server tracks runs in MLflow;
`mlflow.log_metric` then writes into this task's nested run. Without it, or without the mlflow package, the script
says it is skipping MLflow and trains all the same: the pipeline runs anywhere.
"""

from __future__ import annotations

import argparse
import os
import random
from typing import Any

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--epochs", type=int, required=True)
parser.add_argument("--results", required=True, help="the task's ${RESULTS_PATH}")
args = parser.parse_args()


def tracker() -> Any:
    """The mlflow module when this task has a run to log into, else None (with the reason printed)."""
    if not os.environ.get("MLFLOW_RUN_ID"):
        print("MLFLOW_RUN_ID is not set (Odin is not tracking this run in MLflow): skipping MLflow logging")
        return None
    try:
        import mlflow
    except ImportError:
        print("the mlflow package is not installed in this image: skipping MLflow logging")
        return None
    print(f"logging to MLflow run {os.environ['MLFLOW_RUN_ID']}")
    return mlflow


mlflow = tracker()
rng = random.Random(7)
points = [(x, 3 * x + 1 + rng.gauss(0, 0.1)) for x in (i / 50 for i in range(50))]
w = b = 0.0
loss = 0.0
for epoch in range(args.epochs):
    grad_w = grad_b = loss = 0.0
    for x, y in points:
        error = w * x + b - y
        grad_w, grad_b, loss = grad_w + 2 * error * x, grad_b + 2 * error, loss + error * error
    w, b, loss = w - args.lr * grad_w / len(points), b - args.lr * grad_b / len(points), loss / len(points)
    if mlflow is not None:
        mlflow.log_metric("loss", loss, step=epoch)
if mlflow is not None:
    mlflow.log_params({"w": round(w, 4), "b": round(b, 4)})
print(f"lr={args.lr}: w={w:.3f} b={b:.3f} loss={loss:.5f}")
os.makedirs(args.results, exist_ok=True)
with open(os.path.join(args.results, "final_loss"), "w") as f:  # a declared result: Odin logs it as a metric
    f.write(f"{loss:.6f}")
