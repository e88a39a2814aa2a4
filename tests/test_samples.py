"""Every sample pipeline validates, and every resource type has a sample users can copy."""

from __future__ import annotations

from pathlib import Path

from odin.schema import RESOURCE_TYPES, validate_path

SAMPLES = Path(__file__).resolve().parents[1] / "sample-pipelines"


def test_every_sample_pipeline_validates() -> None:
    results = validate_path([SAMPLES])
    assert len(results) >= 10
    problems = {str(path): [str(p) for p in result.problems] for path, result in results if not result.ok}
    assert problems == {}
    warned = {path.parent.name: [w.message.split(":")[0] for w in result.warnings] for path, result in results}
    assert {name: w for name, w in warned.items() if w} == {
        "torchelastic": ["resource_type ElasticJob is deprecated"]
    }, "only the legacy ElasticJob sample has a warning"


def test_every_resource_type_has_a_sample() -> None:
    used: set[str] = set()
    for _, result in validate_path([SAMPLES / "kubernetes"]):
        assert result.spec is not None
        used |= {t.resource_type for t in result.spec.tasks}
    assert used == set(RESOURCE_TYPES) - {"Pod"}
    elastic = [
        t
        for _, r in validate_path([SAMPLES / "kubernetes" / "pytorch-ddp"])
        for t in (r.spec.tasks if r.spec else ())
        if t.elastic
    ]
    assert elastic and elastic[0].resource_type == "PyTorchJob"
