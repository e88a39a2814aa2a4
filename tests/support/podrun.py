"""Play a pod's containers as real local processes: what a kubelet would run, with `/odin/...` under a directory.

The fake kubelet moves pods only through the API; it does not run them. For the artifact steps, whose commands Odin
writes itself (`transfer.py`), the tests want the real thing: this runs the init containers in order, then the
containers side by side, each with the command, arguments and environment of the pod as the apiserver stored it,
with every `/odin/` path moved under `root` (the pod's volumes), `python` as this interpreter, variables taken from
Secrets by `secretKeyRef` filled from `secrets`, and `HOSTNAME` the pod's name. Only the emptyDir volumes Odin adds
are modelled (directories under `root`), which is all the artifact steps use.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class PodOutcome:
    codes: dict[str, int]
    logs: dict[str, str]

    @property
    def ok(self) -> bool:
        return all(code == 0 for code in self.codes.values())


def _moved(value: str, root: Path) -> str:
    return value.replace("/odin/", f"{root}/")


def _env(
    container: Mapping[str, Any], root: Path, secrets: Mapping[str, Mapping[str, str]], pod: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ODIN_", "AWS_"))}
    env["HOSTNAME"] = pod
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = _moved(str(item["value"]), root)
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secrets[ref["name"]][ref["key"]]
    return env


def _argv(container: Mapping[str, Any], root: Path) -> list[str]:
    argv = [_moved(a, root) for a in [*(container.get("command") or []), *(container.get("args") or [])]]
    if argv and argv[0] in ("python", "python3"):  # Odin's image, or a python image: this interpreter
        argv[0] = sys.executable
    return argv


def run_pod(
    pod: Mapping[str, Any], root: Path, secrets: Mapping[str, Mapping[str, str]], *, timeout: float = 120
) -> PodOutcome:
    """Run `pod` (a Pod as JSON: `metadata` and `spec`) to completion; each container's exit code and output."""
    name = pod["metadata"]["name"]
    root.mkdir(parents=True, exist_ok=True)
    for c in [*pod["spec"].get("initContainers", []), *pod["spec"]["containers"]]:
        for mount in c.get("volumeMounts") or []:
            Path(_moved(mount["mountPath"], root)).mkdir(parents=True, exist_ok=True)
    codes: dict[str, int] = {}
    logs: dict[str, str] = {}
    for c in pod["spec"].get("initContainers") or []:
        done = subprocess.run(
            _argv(c, root),
            check=False,
            env=_env(c, root, secrets, name),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        codes[c["name"]], logs[c["name"]] = done.returncode, done.stdout + done.stderr
        if done.returncode != 0:
            return PodOutcome(codes, logs)
    procs = {
        c["name"]: subprocess.Popen(
            _argv(c, root),
            env=_env(c, root, secrets, name),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=_moved(c["workingDir"], root) if c.get("workingDir") else None,
        )
        for c in pod["spec"]["containers"]
    }
    for container, proc in procs.items():
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for p in procs.values():
                p.kill()
            raise
        codes[container], logs[container] = proc.returncode, out
    return PodOutcome(codes, logs)
