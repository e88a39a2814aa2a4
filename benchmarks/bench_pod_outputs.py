"""What the Kubernetes artifact steps cost per task, against a real SeaweedFS server.

* the `odin-upload` step as the pod runs it (`python -m odin.controller.executors.pod_outputs`, a fresh process:
  interpreter and boto3 start-up, results read, artifacts stored, the outputs record written), for a task with one
  small artifact and one result: the fixed cost a task pays on Kubernetes;
* the same step with a larger artifact against a plain boto3 `upload_file` of the same bytes (the bytes' share);
* the controller's side: reading an attempt's outputs record back (`transfer.read_record`), once per task that
  succeeded with outputs.

    .venv/bin/python benchmarks/bench_pod_outputs.py [--size-mib 64] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support: the same server the tests start

from odin.controller.artifacts.s3 import S3Store
from odin.controller.executors import pod_outputs
from odin.controller.executors.kubernetes.transfer import read_record
from tests.support.seaweedfs import S3Endpoint, seaweedfs_server

MiB = 1024 * 1024


def pod_dir(root: Path, artifact_bytes: int) -> Path:
    (root / "artifacts").mkdir(parents=True)
    (root / "results").mkdir()
    with (root / "artifacts" / "model.bin").open("wb") as f:
        left = artifact_bytes
        while left:
            n = min(16 * MiB, left)
            f.write(os.urandom(n))
            left -= n
    (root / "results" / "accuracy").write_text("0.93\n")
    (root / pod_outputs.EXIT_FILE).write_text("0\n")
    return root


def upload_step(endpoint: S3Endpoint, root: Path, key: str) -> float:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ODIN_")},
        **endpoint.env(f"b-{uuid.uuid4().hex}/"),
    }
    argv = [sys.executable, "-m", "odin.controller.executors.pod_outputs", "--record", key, "--dir", str(root),
            "--artifact=model=model.bin", "--result=accuracy"]  # fmt: skip
    t = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="odin-bench-pod-") as tmp:
        work = Path(tmp)
        small = pod_dir(work / "small", 1024)
        large = pod_dir(work / "large", args.size_mib * MiB)
        with seaweedfs_server(work / "weed", bucket="bench") as endpoint:
            fixed = [upload_step(endpoint, small, f"runs/r{i}/t/1/outputs.json") for i in range(args.rounds)]
            step = [upload_step(endpoint, large, f"runs/l{i}/t/1/outputs.json") for i in range(args.rounds)]
            client = endpoint.client()
            plain = []
            for _ in range(args.rounds):
                t = time.perf_counter()
                client.upload_file(str(large / "artifacts" / "model.bin"), endpoint.bucket, f"plain/{uuid.uuid4().hex}")
                plain.append(time.perf_counter() - t)
            store = S3Store(
                bucket=endpoint.bucket, prefix="bench/", endpoint_url=endpoint.url, region=endpoint.region,
                access_key_id=endpoint.access_key, secret_access_key=endpoint.secret_key, addressing_style="path",
            )  # fmt: skip
            store.put_record(pod_outputs.record_key("r", "t", 1), b'{"format": "odin.outputs/1", "problem": null}')
            reads = []
            for _ in range(200):
                t = time.perf_counter()
                read_record(store, "r", "t", 1)
                reads.append(time.perf_counter() - t)
    mib = args.size_mib
    print(f"upload step, 1 KiB artifact + 1 result (process start included): median {statistics.median(fixed):.3f} s")
    print(
        f"upload step, {mib} MiB artifact: median {statistics.median(step):.2f} s "
        f"({mib / statistics.median(step):.1f} MiB/s) vs plain boto3 {statistics.median(plain):.2f} s "
        f"({mib / statistics.median(plain):.1f} MiB/s): {statistics.median(plain) / statistics.median(step):.0%}"
    )
    print(f"controller reads an outputs record: median {statistics.median(reads) * 1000:.2f} ms, "
          f"p95 {sorted(reads)[int(len(reads) * 0.95)] * 1000:.2f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
