"""pytest plugin ``odin_kube``: the ``kube_api`` fixture, a Kubernetes API for one test (docs/testing-kubernetes.md).

Installed with Odin through the ``pytest11`` entry point, so any project that has Odin installed -- a resource-handler
plugin, say -- gets the fixtures without a conftest.  ``kube_api`` starts a fresh ``FakeApiServer`` (or uses the
cluster that ``ODIN_TEST_KUBECONFIG`` names) and yields a ``KubeEnv``: an API client, a fresh namespace, the fake
kubelet, a kubeconfig file, and the fake itself for fault injection.  Override ``kube_api_options`` to pass options
to the fake (``job_controller=False``, ``history_limit=...``).  Disable the plugin with ``-p no:odin_kube``.

The fake is imported when a test first asks for it, not when pytest loads this module: a session that never uses it
does not pay for importing the Kubernetes client.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from odin.testing.kube.environment import KubeEnv
    from odin.testing.kube.fake_apiserver import FakeApiServer


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "kube: talks to a Kubernetes API server (odin.testing.kube's fake, or ODIN_TEST_KUBECONFIG)"
    )


@pytest.fixture
def kube_api_options() -> dict[str, Any]:
    """Keyword arguments for the ``FakeApiServer`` behind ``kube_api``; override this fixture to change them."""
    return {}


@pytest.fixture
def kube_api(kube_api_options: dict[str, Any], tmp_path: Path) -> Iterator[KubeEnv]:
    """A Kubernetes API (a fresh fake, or the ``ODIN_TEST_KUBECONFIG`` cluster) with a fresh namespace."""
    from odin.testing.kube.environment import kube_environment

    with kube_environment(kubeconfig_dir=tmp_path, **kube_api_options) as env:
        yield env


@pytest.fixture
def kube_fake(kube_api: KubeEnv) -> FakeApiServer:
    """The fake API server behind ``kube_api``; skips the test on a real cluster."""
    return kube_api.require_fake()
