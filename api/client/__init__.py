"""Python clients for the Odin API, the same code `odinctl` uses.

- `OdinClient`: synchronous HTTP (httpx);
- `AsyncOdinClient`: asynchronous HTTP (httpx.AsyncClient);
- `OdinWebSocket`: live events and commands over `/v1/ws` (websockets).

Every call decodes into the API's own schemas (`odin.api.schemas`); errors are `ApiError` (the server said no, with
its status and message) or `ServerUnreachable`.
"""

from odin.api.client.async_http import AsyncOdinClient
from odin.api.client.errors import DEFAULT_SERVER, ApiError, ServerUnreachable
from odin.api.client.http import TERMINAL, OdinClient
from odin.api.client.ws import ConnectionLost, OdinWebSocket

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
