"""`-o name`: the identifier each kind of object prints (the server-backed listings are in tests/api)."""

from __future__ import annotations

from types import SimpleNamespace

from odin.cli.render import names


def test_each_kind_prints_the_identifier_its_commands_take() -> None:
    gpus = SimpleNamespace(
        items=[SimpleNamespace(node="gpu-1", index=0, uuid="GPU-x"), SimpleNamespace(node="gpu-1", index=1)]
    )
    assert names(gpus) == ["gpu-1/0", "gpu-1/1"]
    assert names(SimpleNamespace(items=[SimpleNamespace(node="n1", url=None)])) == ["n1"]
    assert names(SimpleNamespace(items=[SimpleNamespace(sha="ab" * 20, branch="main")])) == ["ab" * 20]
    assert names(SimpleNamespace(items=[SimpleNamespace(username="cleo", role="viewer")])) == ["cleo"]
    assert names(SimpleNamespace(id="train-7", name="train")) == ["train-7"], "an object alone: its id first"
    assert names(SimpleNamespace(items=[])) == []
