"""A 1 GiB artifact through the S3 artifact store vs a plain boto3 transfer, against the same SeaweedFS server.

The store does more than boto3 for each byte: a put hashes the file first (the sha256 digest is the object key) and
asks whether the key exists; a get hashes what it downloaded before renaming it into place (`verify`). Plain boto3
is `client.upload_file` / `client.download_file` with its default transfer settings. Rounds alternate which goes
first, each store round under a fresh prefix so that deduplication does not skip the upload; the median of each is
compared. A second put of the same bytes (the identical-output case) is timed too.

Target (issue 11, speed): the store moves a 1 GiB artifact at >= 80 % of plain boto3's throughput, both ways.

    .venv/bin/python benchmarks/bench_artifacts.py [--size-mib 1024] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support: the same server the tests start

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


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    size = args.size_mib * MiB

    with tempfile.TemporaryDirectory(prefix="odin-bench-artifacts-") as tmp:
        work = Path(tmp)
        source = work / "artifact.bin"
        make_file(source, size)
        with seaweedfs_server(work / "weed", bucket="bench") as endpoint:
            client = endpoint.client()
            plain_up: list[float] = []
            plain_down: list[float] = []
            store_up: list[float] = []
            store_down: list[float] = []
            dedup: list[float] = []
            unverified: list[float] = []
            for round_ in range(args.rounds):
                prefix = f"r{round_}-{uuid.uuid4().hex[:8]}/"
                store = S3Store(
                    bucket=endpoint.bucket,
                    prefix=prefix,
                    endpoint_url=endpoint.url,
                    region=endpoint.region,
                    access_key_id=endpoint.access_key,
                    secret_access_key=endpoint.secret_key,
                    addressing_style="path",
                )
                key = f"plain/{prefix}artifact.bin"

                def plain() -> None:
                    plain_up.append(timed(lambda: client.upload_file(str(source), endpoint.bucket, key)))  # noqa: B023
                    plain_down.append(
                        timed(lambda: client.download_file(endpoint.bucket, key, str(work / "plain.out")))  # noqa: B023
                    )

                def ours() -> None:
                    blob = store.put_file(source)  # noqa: B023
                    store_up.append(0.0)
                    store.delete(blob.digest)  # noqa: B023
                    store_up[-1] = timed(lambda: store.put_file(source))  # noqa: B023
                    dedup.append(timed(lambda: store.put_file(source)))  # noqa: B023
                    store_down.append(timed(lambda: store.get_file(blob.digest, work / "store.out")))  # noqa: B023
                    unverified.append(
                        timed(lambda: store.get_file(blob.digest, work / "store.out", verify=False))  # noqa: B023
                    )
                    store.delete(blob.digest)  # noqa: B023

                first, second = (plain, ours) if round_ % 2 == 0 else (ours, plain)
                first()
                second()
                client.delete_object(Bucket=endpoint.bucket, Key=key)
                print(
                    f"round {round_ + 1}: plain up {size / MiB / plain_up[-1]:.0f} MiB/s, "
                    f"down {size / MiB / plain_down[-1]:.0f} MiB/s; store up {size / MiB / store_up[-1]:.0f} MiB/s, "
                    f"down {size / MiB / store_down[-1]:.0f} MiB/s",
                    flush=True,
                )

    def rate(samples: list[float]) -> float:
        return size / MiB / statistics.median(samples)

    print(f"artifact: {args.size_mib} MiB, {args.rounds} rounds, medians; SeaweedFS {endpoint.url} on this machine")
    for label, ours_, plain_ in (("upload", store_up, plain_up), ("download", store_down, plain_down)):
        ratio = rate(ours_) / rate(plain_)
        verdict = "ok" if ratio >= 0.8 else "BELOW TARGET"
        print(
            f"{label:8}: store {rate(ours_):7.1f} MiB/s   plain boto3 {rate(plain_):7.1f} MiB/s   "
            f"ratio {ratio * 100:5.1f} %   (target >= 80 %: {verdict})"
        )
    print(
        f"download without verification (ODIN_ARTIFACTS_VERIFY=false): {rate(unverified):.1f} MiB/s "
        f"({rate(unverified) / rate(plain_down) * 100:.1f} % of plain boto3)"
    )
    print(f"identical artifact stored again (hash + HEAD, no upload): median {statistics.median(dedup):.2f} s")


if __name__ == "__main__":
    main()
