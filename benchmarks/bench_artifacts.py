"""A 1 GiB artifact through the S3 artifact store vs a plain boto3 transfer, against the same SeaweedFS server.

The store does more than boto3 for each byte: a put hashes the file first (the sha256 digest is the object key) and
asks whether the key exists; a get hashes what it downloaded, while it downloads, before renaming it into place
(`verify`). It does less too: no second SHA-256 of every part to sign it and no CRC of every part (s3.py says why).
Plain boto3 is `client.upload_file` / `client.download_file` with boto3's default client and transfer settings,
what a user comparing would write. `--tuned` adds boto3 with the store's client settings (unsigned bodies, no CRC),
to tell the store's own overhead from the settings'.

Fair and stable on a shared machine: the contenders alternate within each round and the order rotates from round
to round (so neither always runs on a warm or a cold server), every store round uses a fresh key prefix (so
deduplication does not skip the upload), and the medians of `--rounds` rounds are compared; the load average is
printed before and after. A second put of the same bytes (the identical-output case) and a download without
verification are timed too.

Target (issue 11, speed): the store moves a 1 GiB artifact at >= 80 % of plain boto3's throughput, both ways.

    .venv/bin/python benchmarks/bench_artifacts.py [--size-mib 1024] [--rounds 5] [--tuned]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support: the same server the tests start

import boto3
from botocore.config import Config

from odin.controller.artifacts.s3 import S3Store
from tests.support.seaweedfs import seaweedfs_server

MiB = 1024 * 1024


def make_file(path: Path, size: int) -> None:
    with path.open("wb") as f:
        left = size
        while left:
            n = min(16 * MiB, left)
            f.write(os.urandom(n))
            left -= n


CPU: dict[str, list[float]] = {}  # this process's CPU seconds (every thread) per operation, beside the wall times


def timed(fn, label: str = "") -> float:  # type: ignore[no-untyped-def]
    c, t = time.process_time(), time.perf_counter()
    fn()
    wall = time.perf_counter() - t
    CPU.setdefault(label, []).append(time.process_time() - c)
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tuned", action="store_true", help="also boto3 with the store's client settings")
    args = parser.parse_args()
    size = args.size_mib * MiB
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores", flush=True)
    samples: dict[str, list[float]] = {}

    def record(label: str, seconds: float) -> None:
        samples.setdefault(label, []).append(seconds)
        CPU.setdefault(label, []).append(CPU.pop("")[-1])  # the CPU time of the `timed` call just made

    with tempfile.TemporaryDirectory(prefix="odin-bench-artifacts-") as tmp:
        work = Path(tmp)
        source = work / "artifact.bin"
        make_file(source, size)
        with seaweedfs_server(work / "weed", bucket="bench") as endpoint:
            plain_client = endpoint.client()
            tuned_client = boto3.client(
                "s3",
                endpoint_url=endpoint.url,
                aws_access_key_id=endpoint.access_key,
                aws_secret_access_key=endpoint.secret_key,
                region_name=endpoint.region,
                config=Config(
                    s3={"addressing_style": "path", "payload_signing_enabled": False},
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                ),
            )

            def boto3_round(label: str, client: Any) -> Callable[[int], None]:
                def go(round_: int) -> None:
                    key = f"{label}/r{round_}-{uuid.uuid4().hex[:8]}/artifact.bin"
                    record(f"{label} up", timed(lambda: client.upload_file(str(source), endpoint.bucket, key)))
                    out = work / f"{label}.out"
                    record(f"{label} down", timed(lambda: client.download_file(endpoint.bucket, key, str(out))))
                    client.delete_object(Bucket=endpoint.bucket, Key=key)
                    out.unlink()

                return go

            def store_round(round_: int) -> None:
                store = S3Store(
                    bucket=endpoint.bucket,
                    prefix=f"store/r{round_}-{uuid.uuid4().hex[:8]}/",
                    endpoint_url=endpoint.url,
                    region=endpoint.region,
                    access_key_id=endpoint.access_key,
                    secret_access_key=endpoint.secret_key,
                    addressing_style="path",
                )
                blobs = []
                record("store up", timed(lambda: blobs.append(store.put_file(source))))
                record("store again", timed(lambda: store.put_file(source)))
                out = work / "store.out"
                record("store down", timed(lambda: store.get_file(blobs[0].digest, out)))
                record("store down unverified", timed(lambda: store.get_file(blobs[0].digest, out, verify=False)))
                store.delete(blobs[0].digest)
                out.unlink()

            contenders: list[tuple[str, Callable[[int], None]]] = [
                ("plain", boto3_round("plain", plain_client)),
                ("store", store_round),
            ]
            if args.tuned:
                contenders.append(("tuned", boto3_round("tuned", tuned_client)))
            for round_ in range(args.rounds):
                shift = round_ % len(contenders)
                for _, go in contenders[shift:] + contenders[:shift]:
                    go(round_)
                print(
                    f"round {round_ + 1}: "
                    + ", ".join(
                        f"{label} {size / MiB / values[-1]:.0f} MiB/s"
                        for label, values in samples.items()
                        if label != "store again"
                    ),
                    flush=True,
                )

    def rate(label: str) -> float:
        return size / MiB / statistics.median(samples[label])

    print(f"\nartifact: {args.size_mib} MiB, {args.rounds} rounds, medians; SeaweedFS on this machine")
    for way in ("up", "down"):
        ratio = rate(f"store {way}") / rate(f"plain {way}")
        verdict = "ok" if ratio >= 0.8 else "BELOW TARGET"
        line = (
            f"{'upload' if way == 'up' else 'download':8}: store {rate(f'store {way}'):7.1f} MiB/s   "
            f"plain boto3 {rate(f'plain {way}'):7.1f} MiB/s   ratio {ratio * 100:5.1f} %   (target >= 80 %: {verdict})"
        )
        if args.tuned:
            tuned = rate(f"tuned {way}")
            line += f"   [boto3 tuned {tuned:.1f} MiB/s: {rate(f'store {way}') / tuned * 100:.0f} %]"
        print(line)
    print(
        f"download without verification (ODIN_ARTIFACTS_VERIFY=false): {rate('store down unverified'):.1f} MiB/s "
        f"({rate('store down unverified') / rate('plain down') * 100:.1f} % of plain boto3)"
    )
    print(
        "client CPU seconds (this process, all threads; medians): "
        + ", ".join(f"{label} {statistics.median(CPU[label]):.2f}" for label in samples)
    )
    again = statistics.median(samples["store again"])
    print(f"identical artifact stored again (hash + HEAD, no upload): median {again:.2f} s")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
