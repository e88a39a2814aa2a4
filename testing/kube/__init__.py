"""An HTTP-level fake Kubernetes API server, a fake kubelet and the pytest fixtures built on them.

The names below import lazily (PEP 562), so that pytest loading the ``odin_kube`` plugin, which imports this package,
does not import the Kubernetes client for sessions that never use it.  See docs/testing-kubernetes.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from odin.testing.kube.environment import KUBECONFIG_ENV, KubeEnv, kube_environment
    from odin.testing.kube.fake_apiserver import FakeApiServer
    from odin.testing.kube.fake_resources import ResourceKind, custom_kind
    from odin.testing.kube.kubelet import CustomRef, Kubelet, wait_for

_HOMES = {
    "KUBECONFIG_ENV": "environment",
    "KubeEnv": "environment",
    "kube_environment": "environment",
    "FakeApiServer": "fake_apiserver",
    "ResourceKind": "fake_resources",
    "custom_kind": "fake_resources",
    "CustomRef": "kubelet",
    "Kubelet": "kubelet",
    "wait_for": "kubelet",
}

__all__ = [
    "KUBECONFIG_ENV",
    "CustomRef",
    "FakeApiServer",
    "KubeEnv",
    "Kubelet",
    "ResourceKind",
    "custom_kind",
    "kube_environment",
    "wait_for",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
