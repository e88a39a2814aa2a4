"""Python clients for the Odin API, the same code `odinctl` uses.

- `OdinClient`: synchronous HTTP (httpx);
- `AsyncOdinClient`: asynchronous HTTP (httpx.AsyncClient);
- `OdinWebSocket`: live events and commands over `/v1/ws` (websockets).

Every call decodes into the API's own schemas (`odin.api.schemas`); errors are `ApiError` (the server said no, with
its status and message) or `ServerUnreachable`.
"""

from typing import TYPE_CHECKING, Any

from odin.api.client.errors import DEFAULT_SERVER, ApiError, ServerUnreachable
from odin.api.client.http import TERMINAL, OdinClient

if TYPE_CHECKING:
    from odin.api.client.async_http import AsyncOdinClient
    from odin.api.client.ws import ConnectionLost, OdinWebSocket

# The asynchronous clients are imported on first use (PEP 562): they bring asyncio and websockets, which every
# `odinctl` command but `watch` and `run --wait` would otherwise pay for at start-up (docs/architecture.md, "Start-up").
_LAZY = {
    "AsyncOdinClient": "odin.api.client.async_http",
    "ConnectionLost": "odin.api.client.ws",
    "OdinWebSocket": "odin.api.client.ws",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_SERVER",
    "TERMINAL",
    "ApiError",
    "AsyncOdinClient",
    "ConnectionLost",
    "OdinClient",
    "OdinWebSocket",
    "ServerUnreachable",
]
