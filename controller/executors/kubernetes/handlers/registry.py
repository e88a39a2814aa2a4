"""Which `resource_type` runs as which handler: the built-in kinds, plus any installed plugin.

A plugin is a `ResourceHandler` subclass exposed in the `odin.resource_handlers` entry-point group, the entry point's
name being the `resource_type` it serves:

    [project.entry-points."odin.resource_handlers"]
    RayJob = "my_odin_plugins.ray:RayJobHandler"

Odin's own kinds are registered the same way (see pyproject.toml) and also listed here, so a source checkout that was
never installed still runs them. A plugin may replace a built-in kind by using its name. `odin.schema` reads the same
group to accept plugin names in `resource_type` when validating pipelines.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from importlib.metadata import entry_points

from odin.controller.executors.kubernetes.handlers.base import ResourceHandler
from odin.controller.executors.kubernetes.handlers.elastic import ElasticJobHandler
from odin.controller.executors.kubernetes.handlers.job import JobHandler
from odin.controller.executors.kubernetes.handlers.kubeflow import MPIJobHandler, PyTorchJobHandler, TFJobHandler
from odin.controller.executors.kubernetes.handlers.pod import PodHandler
from odin.controller.executors.kubernetes.handlers.trainjob import TrainJobHandler

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "odin.resource_handlers"
BUILTIN: tuple[type[ResourceHandler], ...] = (
    PodHandler,
    JobHandler,
    PyTorchJobHandler,
    TFJobHandler,
    MPIJobHandler,
    ElasticJobHandler,
    TrainJobHandler,
)


class UnknownResourceType(LookupError):
    """A `resource_type` no installed handler serves."""


class HandlerRegistry:
    """`resource_type` -> handler instance."""

    def __init__(self, handlers: Mapping[str, ResourceHandler]) -> None:
        self._handlers = dict(handlers)

    @classmethod
    def load(cls) -> HandlerRegistry:
        """The built-in handlers, then every entry point of the group (a broken plugin is logged and skipped)."""
        handlers: dict[str, ResourceHandler] = {h.resource_type: h() for h in BUILTIN}
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.value.startswith("odin.controller.executors.kubernetes.handlers."):
                continue  # a built-in, already there
            try:
                loaded = ep.load()
                if not (isinstance(loaded, type) and issubclass(loaded, ResourceHandler)):
                    raise TypeError(f"{ep.value} is not a ResourceHandler subclass")
                handler = loaded()
            except Exception:
                log.exception("resource handler plugin %s = %s could not be loaded; skipped", ep.name, ep.value)
                continue
            if handler.resource_type != ep.name:
                log.warning(
                    "resource handler plugin %s serves resource_type %r; registered as %r (its entry point name)",
                    ep.value, handler.resource_type, ep.name,
                )  # fmt: skip
            handlers[ep.name] = handler
        return cls(handlers)

    def get(self, resource_type: str) -> ResourceHandler:
        try:
            return self._handlers[resource_type]
        except KeyError:
            raise UnknownResourceType(
                f"unknown resource_type {resource_type!r}; known: {', '.join(self.names)} (a plugin adds one through "
                f"the {ENTRY_POINT_GROUP!r} entry-point group)"
            ) from None

    def register(self, handler: ResourceHandler, name: str | None = None) -> None:
        self._handlers[name or handler.resource_type] = handler

    @property
    def names(self) -> list[str]:
        return list(self._handlers)

    def all(self) -> list[ResourceHandler]:
        return list(self._handlers.values())
