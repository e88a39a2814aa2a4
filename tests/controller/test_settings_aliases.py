"""A setting with several environment names (ODIN_PUBLIC_URL, ODIN_EXTERNAL_URL) behaves like every other one."""

from __future__ import annotations

import pytest

from odin.controller.settings import Settings


@pytest.mark.parametrize("env_name", ["ODIN_PUBLIC_URL", "ODIN_EXTERNAL_URL"])
def test_either_name_is_read_from_the_environment(env_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ODIN_PUBLIC_URL", "ODIN_EXTERNAL_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(env_name, "https://odin.example.com/ml")
    assert Settings().public_url == "https://odin.example.com/ml"


@pytest.mark.parametrize("env_name", ["ODIN_PUBLIC_URL", "ODIN_EXTERNAL_URL"])
def test_an_argument_outranks_the_environment(env_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Before pydantic-settings 2.12 the environment won when the field had aliases: tests and embedders that pass
    # `public_url=` got whatever the shell exported.
    monkeypatch.setenv(env_name, "https://from-the-environment.example.com")
    assert Settings(public_url="https://given.example.com").public_url == "https://given.example.com"
