"""Resource handlers: one class per Kubernetes kind that can run a task (see `base.py` and `registry.py`)."""

from odin.controller.executors.kubernetes.handlers.base import (
    AttemptView,
    ResourceHandler,
    TopStatus,
    Verdict,
    kubeflow_status,
)
from odin.controller.executors.kubernetes.handlers.registry import (
    ENTRY_POINT_GROUP,
    HandlerRegistry,
    UnknownResourceType,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "AttemptView",
    "HandlerRegistry",
    "ResourceHandler",
    "TopStatus",
    "UnknownResourceType",
    "Verdict",
    "kubeflow_status",
]
