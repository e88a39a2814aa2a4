"""What handlers receive by injection, marked explicitly (Litestar 3 drops dependencies inferred from names)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeAlias, TypeVar

import anyio.to_thread
from litestar.di import NamedDependency

from odin.api.context import AppContext

Ctx: TypeAlias = NamedDependency[AppContext]
T = TypeVar("T")


async def in_thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Blocking work (the store, git) in a worker thread, from an `async def` handler.

    Handlers that share a path with another handler (`GET` and `POST /v1/runs`...) use this instead of
    `sync_to_thread=True`: Litestar 2.25 registers the first handler of a path again for each later one and wraps a
    sync handler once per registration, which costs one extra thread round trip per request (measured: ~15% of
    the throughput of `GET /v1/runs`).
    """
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))
