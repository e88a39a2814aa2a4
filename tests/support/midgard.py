"""`midgard serve` as a real subprocess on loopback, optionally with fake GPUs (`MIDGARD_FAKE_NVML`)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from odin.testing.nvml import write_fake_gpus
from tests.support.process import ServerProcess
from tests.support.server import free_port

BIN = Path(sys.executable).parent


class MidgardAgent(ServerProcess):
    """One agent process. `gpus` (fake_gpu dicts) writes a fake NVML file; `None` uses this machine's real NVML."""

    name = "midgard"

    def __init__(
        self,
        workdir: Path,
        *,
        gpus: list[dict[str, Any]] | None = None,
        token: str = "midgard-test-token",
        port: int | None = None,
        env: Mapping[str, str] = {},
        args: tuple[str, ...] = (),
    ) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = token
        self.token_file = workdir / f"token-{self.port}"
        self.token_file.write_text(token + "\n")
        self.fake_path: Path | None = None
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("MIDGARD_", "ODIN_"))}
        if gpus is not None:
            self.fake_path = write_fake_gpus(workdir / f"gpus-{self.port}.json", gpus)
            self.env["MIDGARD_FAKE_NVML"] = str(self.fake_path)
        self.env.update(env)
        self.args = args
        self.log_path = workdir / f"midgard-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def set_gpus(self, gpus: list[dict[str, Any]]) -> None:
        """Change the fake GPUs; the agent sees it on its next NVML pass (after its cache TTL)."""
        assert self.fake_path is not None, "started without fake GPUs"
        write_fake_gpus(self.fake_path, gpus)

    def start(self, timeout: float = 60) -> MidgardAgent:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(BIN / "midgard"),
                    "serve",
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--token-file",
                    str(self.token_file),
                    *self.args,
                ],
                env=self.env,
                stdout=log,
                stderr=log,
            )
        self.wait_healthy(timeout, interval=0.05)
        return self
