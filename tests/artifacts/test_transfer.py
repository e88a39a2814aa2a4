"""The pod transfer command as a real process (`python -m odin.controller.artifacts.transfer`) against a real S3
server: what an init container and an output wrapper run."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from odin.controller.artifacts.digest import hash_bytes
from tests.support.seaweedfs import S3Endpoint

MODULE = "odin.controller.artifacts.transfer"


def transfer(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ODIN_", "AWS_"))}
    return subprocess.run(
        [sys.executable, "-m", MODULE, *args],
        check=False,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def s3_env(s3_endpoint: S3Endpoint, test_prefix: str) -> dict[str, str]:
    return s3_endpoint.env(prefix=test_prefix)


def make_outputs(root: Path) -> Path:
    (root / "ckpt" / "shards").mkdir(parents=True)
    (root / "model.bin").write_bytes(os.urandom(300_000))
    (root / "ckpt" / "config.json").write_text('{"lr": 0.1}')
    (root / "ckpt" / "shards" / "0.pt").write_bytes(os.urandom(70_000))
    return root


def test_upload_then_download_by_manifest(s3_env: dict[str, str], s3_endpoint: S3Endpoint, tmp_path: Path) -> None:
    out = make_outputs(tmp_path / "out")
    up = transfer(s3_env, "upload", "--from", str(out), "--write", str(tmp_path / "manifest.json"))
    assert up.returncode == 0, up.stderr
    manifest = json.loads(up.stdout)
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest
    assert manifest["store"] == "s3"
    rows = {row["name"]: row for row in manifest["artifacts"]}
    assert rows["model.bin"] == {
        "name": "model.bin",
        "kind": "file",
        "size": 300_000,
        "digest": "sha256:" + hashlib.sha256((out / "model.bin").read_bytes()).hexdigest(),
    }
    assert rows["ckpt"]["kind"] == "dir"
    assert rows["ckpt"]["files"] == 2
    assert rows["ckpt"]["size"] == len('{"lr": 0.1}') + 70_000
    for text in (up.stdout, up.stderr):
        assert s3_endpoint.secret_key not in text

    down = transfer(s3_env, "download", "--to", str(tmp_path / "in"), "--manifest", str(tmp_path / "manifest.json"))
    assert down.returncode == 0, down.stderr
    for rel in ("model.bin", "ckpt/config.json", "ckpt/shards/0.pt"):
        assert (tmp_path / "in" / rel).read_bytes() == (out / rel).read_bytes()


def test_download_by_spec_and_work_tree_into_dir(s3_env: dict[str, str], tmp_path: Path) -> None:
    out = make_outputs(tmp_path / "out")
    up = transfer(s3_env, "upload", "--from", str(out), "--only", "ckpt", "--only", "model.bin")
    assert up.returncode == 0, up.stderr
    rows = {row["name"]: row for row in json.loads(up.stdout)["artifacts"]}
    assert sorted(rows) == ["ckpt", "model.bin"]
    down = transfer(
        s3_env,
        "download",
        "--to",
        str(tmp_path / "work"),
        f"./={rows['ckpt']['digest']}",  # a tree unpacked into the directory itself (the work tree case)
        f"inputs/model.bin={rows['model.bin']['digest']}",
    )
    assert down.returncode == 0, down.stderr
    assert (tmp_path / "work" / "config.json").read_text() == '{"lr": 0.1}'
    assert (tmp_path / "work" / "shards" / "0.pt").read_bytes() == (out / "ckpt" / "shards" / "0.pt").read_bytes()
    assert (tmp_path / "work" / "inputs" / "model.bin").read_bytes() == (out / "model.bin").read_bytes()


def test_failures_exit_1_with_a_message(s3_env: dict[str, str], tmp_path: Path) -> None:
    missing = transfer(s3_env, "download", "--to", str(tmp_path / "in"), f"x={hash_bytes(b'never stored')}")
    assert missing.returncode == 1
    assert "not in the store" in missing.stderr
    assert "Traceback" not in missing.stderr
    (tmp_path / "out").mkdir()
    undeclared = transfer(s3_env, "upload", "--from", str(tmp_path / "out"), "--only", "model.bin")
    assert undeclared.returncode == 1
    assert "not written by the task: model.bin" in undeclared.stderr


def test_usage_errors_exit_2(s3_env: dict[str, str], tmp_path: Path) -> None:
    bad = transfer(s3_env, "download", "--to", str(tmp_path), "../escape=sha256:" + "0" * 64)
    assert bad.returncode == 2
    assert "not a plain relative path" in bad.stderr


def test_local_store_from_the_environment(tmp_path: Path) -> None:
    out = make_outputs(tmp_path / "out")
    env = {"ODIN_ARTIFACTS_DIR": str(tmp_path / "store")}
    up = transfer(env, "upload", "--from", str(out))
    assert up.returncode == 0, up.stderr
    assert json.loads(up.stdout)["store"] == "local"
    down = transfer(env, "download", "--to", str(tmp_path / "in"), "--manifest", "-")
    assert down.returncode == 2, "stdin was empty: not a manifest"
    proc = subprocess.run(
        [sys.executable, "-m", MODULE, "download", "--to", str(tmp_path / "in"), "--manifest", "-"],
        input=up.stdout,
        check=False,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("ODIN_")}, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "in" / "model.bin").read_bytes() == (out / "model.bin").read_bytes()
