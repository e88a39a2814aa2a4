"""load_pipeline never raises for bad input: realistic files with values swapped for awkward YAML."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from odin.schema import load_pipeline
from odin.schema.legacy import accept_legacy
from odin.schema.schemafile import validator
from odin.schema.yamlload import load_yaml

DATA = Path(__file__).parent / "data"
AWKWARD = [
    "0x10", "1_000", "1:30", ".inf", ".nan", "~", "", "yes", "NO", "'q'", '"${X}"', "${params.lr}", "$${Y}", "${",
    "1e999999999", "9" * 40, "1.0e400", "-1", "0", "2.0", "!!int 3", "!!float 1", "[]", "{}", "[a, 1]", "{a: 1}",
    "*nope", "&a x", "500m", "90s", "1h30m", "0s", "1d25h", "Train_Model", "/abs", "../x",
    "{requests: 1e999999999, limits: 1}", "{requests: 2, limits: 1}", "{runAsUser: 1, run_as_user: 2}",
    "{min_replicas: 3, max_replicas: 1}", "[{name: m, path: /m, claim: c}, {name: m, path: /m, claim: d}]",
    "'echo \"unbalanced'", "echo 'x", "PyTorchJob", "{type: integer, default: 0x1F, choices: [0x1F, 1_0]}",
    "{type: boolean, default: maybe}", "{default: 1:30}", "é\u2028", "[[[[[[[[", "{{", "'", "- x", "!!binary aGk=",
]  # fmt: skip
_VALUE = re.compile(r"^(\s*(?:- )?[\w.-]+:)\s?(.*)$")


@pytest.mark.parametrize("seed", range(4))
def test_mutated_fixture_text_gives_problems_not_exceptions(seed: int) -> None:
    rng = random.Random(seed)
    files = [path.read_text() for path in sorted(DATA.glob("*/main.yml"))]
    outcomes = {True: 0, False: 0}
    for _ in range(400):
        lines = rng.choice(files).splitlines()
        for _ in range(rng.randint(1, 3)):
            j = rng.randrange(len(lines))
            match = _VALUE.match(lines[j])
            if match:
                lines[j] = f"{match.group(1)} {rng.choice(AWKWARD)}"
        data = ("\n".join(lines) + "\n").encode()
        result = load_pipeline(data, file="main.yml", default_name="fuzz")
        outcomes[result.ok] += 1
        if result.ok:
            doc, _ = load_yaml(data, file="main.yml")
            assert doc is not None
            accept_legacy(doc, "main.yml")  # nulls of known fields are absent, as the original Odin read them
            assert validator().is_valid(doc.value)
        else:
            assert result.spec is None
            assert result.problems
    assert outcomes[True] > 20 and outcomes[False] > 200
