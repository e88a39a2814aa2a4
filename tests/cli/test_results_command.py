"""`odinctl results` on its short path (odin.cli.results): which command lines it takes itself, and what it prints.

The command over real HTTP is tested in tests/api/test_artifacts.py; here, the pure parts: the parser must take only
what typer would accept with the same meaning (anything else goes to typer, which answers help and usage errors), and
the streamed JSON must be the document `json.dumps` writes.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from odin.api.client import DEFAULT_SERVER
from odin.cli import results
from odin.cli.results import Options, parse


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["-p", "train"], Options("train")),
        (["--pipeline", "train", "--since", "30d"], Options("train", since="30d")),
        (["--pipeline=train", "--since=2024-05-01T12:00:00Z"], Options("train", since="2024-05-01T12:00:00Z")),
        (["-ptrain", "-ojson", "--limit", "7"], Options("train", limit=7, output="json")),
        (["-p", "a", "-p", "b", "--all", "-o", "csv"], Options("b", all=True, output="csv")),
        (["-s", "https://odin.example.com", "-p", "x", "--output=yaml"],
         Options("x", server="https://odin.example.com", output="yaml")),
        (["-p", "-p"], Options("-p")),  # a value that looks like an option is still the value, as for click
    ],
)  # fmt: skip
def test_parse_takes_well_formed_command_lines(argv: list[str], expected: Options) -> None:
    assert parse(argv) == expected


@pytest.mark.parametrize(
    "argv",
    [
        [],  # --pipeline is required
        ["--help"],
        ["-p", "train", "--help"],
        ["-p"],
        ["-p", "train", "--limit", "0"],
        ["-p", "train", "--limit", "10001"],
        ["-p", "train", "--limit", "ten"],
        ["-p", "train", "-o", "xml"],
        ["-p", "train", "-o=json"],  # click reads the value "=json"
        ["-p", "train", "--all=yes"],
        ["-p", "train", "extra"],
        ["-p", "train", "--"],
        ["--pipe", "train"],
    ],
)
def test_parse_leaves_everything_else_to_typer(argv: list[str]) -> None:
    assert parse(argv) is None


def test_default_server_is_the_clients() -> None:
    assert results.DEFAULT_SERVER == DEFAULT_SERVER


def page(items: list[dict[str, Any]], cursor: str | None = None) -> dict[str, Any]:
    return {"pipeline": "train", "since": "2026-11-07T12:00:00Z", "columns": ["train.acc", "eval.acc"],
            "items": items, "next_cursor": cursor}  # fmt: skip


def item(n: int) -> dict[str, Any]:
    results = {"train": {"acc": n / 10}, "eval": {"acc": [1, n]}}
    return {"run_id": f"train-{n}", "commit_sha": f"{n:040x}", "branch": "main", "status": "succeeded",
            "created_at": f"2026-12-0{n}T10:00:00Z", "results": results}  # fmt: skip


@pytest.mark.parametrize("split", [[], [[]], [[1]], [[1, 2, 3]], [[1], [2], [3]], [[1, 2], [], [3]]])
def test_streamed_json_is_the_document_of_one_page_of_everything(split: list[list[int]]) -> None:
    import io

    pages = [page([item(n) for n in numbers], cursor="more") for numbers in split] or [page([])]
    out = io.StringIO()
    results.write_json(out, pages[0], iter(pages[1:]))
    everything = page([item(n) for numbers in split for n in numbers])
    assert out.getvalue() == json.dumps(everything, indent=2) + "\n"


def test_table_lines_up_columns_and_names_results_short_when_unique() -> None:
    text = results.table(["train.acc", "train.loss", "eval.acc"], [
        {**item(1), "results": {"train": {"acc": 0.9, "loss": 0.25}, "eval": {"acc": 0.5}}},
        {**item(2), "commit_sha": None, "status": "failed", "results": {"train": {"acc": 0.95}}},
    ])  # fmt: skip
    header, first, second = text.splitlines()
    assert header.split() == ["COMMIT", "RUN", "DATE", "STATUS", "TRAIN.ACC", "LOSS", "EVAL.ACC"]
    assert first.split()[:2] == [f"{1:040x}"[:7], "train-1"] and first.split()[-3:] == ["0.9", "0.25", "0.5"]
    assert second.split()[0] == "-" and second.split()[-2:] == ["failed", "0.95"]
    assert header.index("TRAIN.ACC") == first.index("0.9") == second.index("0.95"), "columns line up"
    coloured = results.table(["train.acc"], [item(1)], colour=True)
    assert "\x1b[32msucceeded\x1b[0m" in coloured and "\x1b[1mCOMMIT\x1b[0m" in coloured


def test_https_verifies_the_server_as_httpx_would(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    import ssl

    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    assert results._tls_context("http://127.0.0.1:9003") is None
    context = results._tls_context("https://odin.example.com")
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 0, "certifi's CAs loaded"
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    with pytest.raises(FileNotFoundError):  # fetch reports it as `cannot reach` (exit 3)
        results._tls_context("https://odin.example.com")
