"""`odin serve` and `odinctl` as real subprocesses, the way users run them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.support.ports import free_port
from tests.support.process import ServerProcess

__all__ = ["BIN", "OdinServer", "free_port", "odinctl"]

BIN = Path(sys.executable).parent


class OdinServer(ServerProcess):
    """An `odin serve` process with its own data directory, port and environment."""

    name = "odin serve"

    def __init__(
        self,
        data_dir: Path,
        env: Mapping[str, str],
        *,
        port: int | None = None,
        popen_kwargs: Mapping[str, Any] | None = None,
        command: Sequence[str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.command = list(command or [str(BIN / "odin")])  # how `odin` is started (another user's interpreter)
        self.popen_kwargs = dict(popen_kwargs or {})  # e.g. preexec_fn, user: how the process is started
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("ODIN_")},
            "ODIN_DATA_DIR": str(data_dir),
            "ODIN_PORT": str(self.port),
            "ODIN_LOG_LEVEL": "INFO",
            **env,
        }
        self.log_path = data_dir.parent / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> OdinServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [*self.command, "serve"], env=self.env, stdout=log, stderr=log, **self.popen_kwargs
        )
        log.close()
        self.wait_healthy(timeout, interval=0.1)
        return self


def odinctl(
    *args: str,
    server: OdinServer | None = None,
    config_dir: Path,
    stdin: str | None = None,
    env: Mapping[str, str] = {},
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ODIN_")}
    full_env.update({"ODIN_CONFIG_DIR": str(config_dir), "NO_COLOR": "1", "COLUMNS": "200"})
    full_env.update(env)  # a test may narrow COLUMNS
    if server is not None:
        full_env["ODIN_SERVER"] = server.url
    return subprocess.run(
        [str(BIN / "odinctl"), *args],
        env=full_env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
