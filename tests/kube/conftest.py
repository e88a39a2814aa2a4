"""Odin's Kubernetes tests use the ``odin_kube`` pytest plugin's fixtures (``kube_api``, ``kube_fake``) under the
short name they have always had here: ``kube``."""

from __future__ import annotations

import pytest

from odin.testing.kube.environment import KubeEnv


@pytest.fixture
def kube(kube_api: KubeEnv) -> KubeEnv:
    return kube_api
