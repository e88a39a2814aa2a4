"""Makes the Kubernetes fixtures (``kube``, ``kube_fake``) available to every test module under ``tests/kube``."""

from odin.testing.kube.environment import kube, kube_fake

__all__ = ["kube", "kube_fake"]
