"""Secrets leave the environment at start but stay usable; the data directory is private (issue 8, item 2).

The whole story, with a real `odin serve` and a probing task, is tests/e2e/test_task_secrets.py; these pin the parts
an operator relies on: `env:NAME` references still resolve after the variable left the environment, and loose
modes left by older versions are fixed with a warning.
"""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from odin.controller.git.credentials import resolve_secret_ref
from odin.controller.secrecy import secret_env_names, secure_data_dir, withhold_secrets


def test_secret_variables_leave_the_environment_and_references_still_resolve(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ODIN_WEBHOOK_SECRET", "hook-value")
    monkeypatch.setenv("ODIN_JWT_SECRET_FILE", "/run/secrets/jwt")
    monkeypatch.setenv("ODIN_DATABASE_URL", "postgresql://odin:pw@db/odin")
    monkeypatch.setenv("ODIN_LOG_LEVEL", "INFO")
    monkeypatch.setenv("DEPLOY_TOKEN", "token-value")  # named by a reference: a secret whatever its name
    removed = withhold_secrets(["env:DEPLOY_TOKEN", "plain-value", None])
    assert removed == ["DEPLOY_TOKEN", "ODIN_DATABASE_URL", "ODIN_JWT_SECRET_FILE", "ODIN_WEBHOOK_SECRET"]
    for name in removed:
        assert name not in os.environ
    assert os.environ["ODIN_LOG_LEVEL"] == "INFO"
    assert resolve_secret_ref("env:DEPLOY_TOKEN") == "token-value"
    assert resolve_secret_ref("env:ODIN_WEBHOOK_SECRET") == "hook-value"
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(sorted(k for k in os.environ if 'TOKEN' in k or 'SECRET' in k))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.strip() == "[]"


def test_secret_names() -> None:
    names = ["ODIN_ADMIN_PASSWORD", "ODIN_STATUS_TOKEN", "ODIN_GIT_SSH_KEY", "ODIN_PORT", "ODIN_REPO", "HOME"]
    assert secret_env_names(names) == ["ODIN_ADMIN_PASSWORD", "ODIN_GIT_SSH_KEY", "ODIN_STATUS_TOKEN"]


def test_loose_modes_are_fixed_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o755)
    (data / "jwt-secret").write_text("x" * 40)
    (data / "jwt-secret").chmod(0o644)
    (data / "odin.db").write_bytes(b"")
    (data / "odin.db").chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="odin.controller.secrecy"):
        secure_data_dir(data)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "jwt-secret").stat().st_mode) == 0o600
    warned = [r.getMessage() for r in caplog.records]
    assert any("jwt-secret had mode 644" in m for m in warned) and any("had mode 755" in m for m in warned)
    assert not any("odin.db" in m for m in warned)


def test_a_new_data_directory_is_private(tmp_path: Path) -> None:
    secure_data_dir(tmp_path / "new" / "data")
    assert stat.S_IMODE((tmp_path / "new" / "data").stat().st_mode) == 0o700
