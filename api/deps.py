"""What handlers receive by injection, marked explicitly (Litestar 3 drops dependencies inferred from names)."""

from __future__ import annotations

from typing import TypeAlias

from litestar.di import NamedDependency

from odin.api.context import AppContext

Ctx: TypeAlias = NamedDependency[AppContext]
