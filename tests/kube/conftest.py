"""Makes the Kubernetes fixtures (``kube``, ``kube_fake``) available to every test module under ``tests/kube``."""

from tests.kube.fixtures import kube, kube_fake

__all__ = ["kube", "kube_fake"]
