"""Where `odinctl` keeps its tokens: one 0600 JSON file, one entry per server.

`$ODIN_CONFIG_DIR` (default `$XDG_CONFIG_HOME/odin`, i.e. ~/.config/odin) holds `credentials.json`. The file is
created with mode 0600 before anything is written into it, and rewritten atomically.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any


def config_dir() -> Path:
    if os.environ.get("ODIN_CONFIG_DIR"):
        return Path(os.environ["ODIN_CONFIG_DIR"])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "odin"


def _path() -> Path:
    return config_dir() / "credentials.json"


def load() -> dict[str, Any]:
    try:
        data = json.loads(_path().read_text())
    except (OSError, ValueError):
        return {"servers": {}}
    return data if isinstance(data, dict) and isinstance(data.get("servers"), dict) else {"servers": {}}


def save(data: dict[str, Any]) -> None:
    import tempfile  # only when writing: reading a token is on every command's start-up path

    path = _path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".credentials-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def token_for(server: str) -> str | None:
    entry = load()["servers"].get(server.rstrip("/"))
    return entry.get("token") if isinstance(entry, dict) else None


def store_token(server: str, token: str, username: str, expires_in: int | None) -> None:
    """Remember `token` for `server` (and make it the default server); `expires_in` None: an API token."""
    import time

    data = load()
    data["servers"][server.rstrip("/")] = {
        "token": token,
        "username": username,
        "expires_at": int(time.time()) + expires_in if expires_in is not None else None,
    }
    data["default"] = server.rstrip("/")
    save(data)


def forget(server: str) -> bool:
    data = load()
    removed = data["servers"].pop(server.rstrip("/"), None) is not None
    save(data)
    return removed


def default_server() -> str | None:
    value = load().get("default")
    return value if isinstance(value, str) else None
