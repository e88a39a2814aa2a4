"""`odin.schema`'s names: every one of `__all__` resolves, those imported on first use (PEP 562) included, and a
misspelt one is an AttributeError naming it."""

from __future__ import annotations

import subprocess
import sys

import pytest

import odin.schema


@pytest.mark.parametrize("name", odin.schema.__all__)
def test_every_name_resolves(name: str) -> None:
    assert getattr(odin.schema, name) is not None


def test_the_repository_configuration_is_imported_on_first_use() -> None:
    probe = (
        "import sys, odin.schema\n"
        "assert 'odin.schema.repoconfig' not in sys.modules and 'odin.schema.report' not in sys.modules\n"
        "from odin.schema import RepoConfig, format_problems\n"
        "from odin.schema.repoconfig import RepoConfig as Direct\n"
        "assert RepoConfig is Direct and 'odin.schema.report' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match=r"module 'odin\.schema' has no attribute 'load_repoconfig'"):
        _ = odin.schema.load_repoconfig  # type: ignore[attr-defined]
