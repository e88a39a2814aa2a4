"""What handlers receive by injection, marked explicitly (Litestar 3 drops dependencies inferred from names)."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeAlias, TypeVar

from litestar.di import NamedDependency

from odin.api.context import AppContext

Ctx: TypeAlias = NamedDependency[AppContext]
T = TypeVar("T")

_THREADS = ThreadPoolExecutor(max_workers=40, thread_name_prefix="odin-api")  # anyio's default limit, as before


async def in_thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Blocking work (the store, git) in a worker thread, from an `async def` handler.

    Handlers that share a path with another handler (`GET` and `POST /v1/runs`...) use this instead of
    `sync_to_thread=True`: Litestar 2.25 registers the first handler of a path again for each later one and wraps a
    sync handler once per registration, which costs one extra thread round trip per request (measured: ~15% of
    the throughput of `GET /v1/runs`).

    asyncio's executor rather than `anyio.to_thread`: anyio's capacity limiter, run-variable and backend look-ups
    cost more CPU per call than `GET /v1/runs?commit=`'s query (docs/api.md, "Speed"). The context is copied as
    anyio and `asyncio.to_thread` do. A cancelled caller stops waiting; the call itself runs to its end.
    """
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_THREADS, call)
