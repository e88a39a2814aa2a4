"""What every route handler may need, built once per app: the store, the controller, token keys, settings."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from odin.api.auth.tokens import TokenKeys
from odin.controller.service import Controller
from odin.controller.settings import Settings


@dataclass
class AppContext:
    settings: Settings
    db: Engine
    keys: TokenKeys
    controller: Controller | None = None  # None when the API serves a store without scheduling (tests, tools)
