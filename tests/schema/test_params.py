"""resolve_params: the values a run is created with, checked against the pipeline's declarations."""

from __future__ import annotations

import pytest

from odin.schema import ParamError, ParamSpec, PipelineSpec, TaskSpec, resolve_params

PIPELINE = PipelineSpec(
    name="p",
    tasks=(TaskSpec(name="t", image="i", command=("c",)),),
    params=(
        ParamSpec(name="lr", default="0.001", type="number"),
        ParamSpec(name="epochs", default="10", type="integer"),
        ParamSpec(name="fast", default="false", type="boolean"),
        ParamSpec(name="dataset", default="mnist", choices=("mnist", "cifar")),
        ParamSpec(name="ratio", default="1", type="number", choices=("0.5", "1")),
        ParamSpec(name="token"),
    ),
)


def test_defaults_apply_and_given_values_win() -> None:
    assert resolve_params(PIPELINE, {"token": "abc", "epochs": "3"}) == {
        "lr": "0.001",
        "epochs": "3",
        "fast": "false",
        "dataset": "mnist",
        "ratio": "1",
        "token": "abc",
    }


@pytest.mark.parametrize(("given", "expected"), [("TRUE", "true"), ("yes", "true"), ("0", "false"), ("Off", "false")])
def test_booleans_are_canonical(given: str, expected: str) -> None:
    assert resolve_params(PIPELINE, {"token": "t", "fast": given})["fast"] == expected


def test_numbers_compare_with_choices_by_value() -> None:
    assert resolve_params(PIPELINE, {"token": "t", "ratio": "0.50"})["ratio"] == "0.50"


@pytest.mark.parametrize(
    ("given", "message", "names"),
    [
        ({}, "missing required parameter `token`", ("token",)),
        ({"token": "t", "lrr": "1"}, "unknown parameter `lrr` (did you mean `lr`?)", ("lrr",)),
        (
            {"token": "t", "zzz": "1"},
            "unknown parameter `zzz`; declared: lr, epochs, fast, dataset, ratio, token",
            ("zzz",),
        ),
        ({"token": "t", "epochs": "1.5"}, "parameter `epochs`: `1.5` is not an integer", ("epochs",)),
        ({"token": "t", "lr": "fast"}, "parameter `lr`: `fast` is not a number", ("lr",)),
        ({"token": "t", "lr": "nan"}, "parameter `lr`: `nan` is not a finite number", ("lr",)),
        ({"token": "t", "fast": "maybe"}, "parameter `fast`: `maybe` is not a boolean (true or false)", ("fast",)),
        (
            {"token": "t", "dataset": "imagenet"},
            "parameter `dataset`: `imagenet` is not one of mnist, cifar",
            ("dataset",),
        ),
        ({"token": "t", "ratio": "2"}, "parameter `ratio`: `2` is not one of 0.5, 1", ("ratio",)),
    ],
)
def test_errors_name_the_parameter(given: dict[str, str], message: str, names: tuple[str, ...]) -> None:
    with pytest.raises(ParamError) as raised:
        resolve_params(PIPELINE, given)
    assert str(raised.value) == message
    assert raised.value.params == names
    assert isinstance(raised.value, ValueError)


def test_all_errors_are_reported_at_once() -> None:
    with pytest.raises(ParamError) as raised:
        resolve_params(PIPELINE, {"x": "1", "epochs": "many"})
    assert str(raised.value) == (
        "unknown parameter `x`; declared: lr, epochs, fast, dataset, ratio, token; "
        "parameter `epochs`: `many` is not an integer; missing required parameter `token`"
    )
    assert raised.value.params == ("x", "epochs", "token")


def test_a_pipeline_without_params() -> None:
    bare = PipelineSpec(name="p", tasks=PIPELINE.tasks)
    assert resolve_params(bare, {}) == {}
    with pytest.raises(ParamError, match=r"unknown parameter `lr` \(the pipeline declares no parameters\)"):
        resolve_params(bare, {"lr": "1"})
