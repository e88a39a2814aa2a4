"""`odinctl results`: a pipeline's results per commit as a table, JSON, YAML or CSV, one column per result.

This is the command a person types to ask "did this commit improve accuracy?", and its answer is due in 100 ms
(issue 11). Typer validates every command line it parses through pydantic (about 60 ms), and the client stack
(httpx, msgspec, rich) takes about 70 ms more to import, against about 25 ms for Python itself. So the whole command
is here, on the standard library alone (urllib, json, csv): `odin.cli.entry` hands a `results` command line that
`parse` fully understands straight to `run`; anything else (`--help`, a usage error) goes through typer, whose
`results` command calls the same `run`, so both ways print the same bytes.

Columns are named by the result alone (`accuracy`) when only one task records it, and `task.result` when several do,
so the common case reads short and nothing is ever merged by mistake. The server pages (newest first, a keyset
cursor); `--all` follows the cursor to the last page and streams every run out as it arrives: with `all_columns` the
first page names every column of the range, so a CSV header or a JSON document's `columns` comes first, and the
document is the one a single page of everything would be (`next_cursor` null).
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING

from odin.cli import credentials

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from typing import IO, Any

# Imports are counted here (issue 11: the whole process in 100 ms): no dataclasses (it imports inspect), typing only
# for the checker, datetime/csv/urllib where they are used.

DEFAULT_SERVER = (
    "http://127.0.0.1:9003"  # odin.api.client.DEFAULT_SERVER (a test keeps them equal); not imported: httpx
)
DEFAULT_LIMIT = 50
MAX_LIMIT = 10_000  # the API's largest page
ALL_PAGE = 2_000  # runs per request with --all: few round trips, a bounded answer each
OUTPUTS = ("table", "json", "yaml", "csv")
EXIT_FAILED, EXIT_SERVER = 1, 3

# rich's colours for a status (odin.cli.render.STATUS_STYLE), as ANSI codes: the table is printed without rich.
_ANSI = {"green": "32", "red": "31", "cyan": "36", "dim": "2", "magenta": "35", "yellow": "33", "white": "37"}
_STATUS_COLOUR = {
    "succeeded": "green", "failed": "red", "error": "red", "running": "cyan", "starting": "cyan", "pending": "dim",
    "queued": "magenta", "retrying": "yellow", "skipped": "yellow", "cancelled": "yellow",
}  # fmt: skip


class Options:
    """An `odinctl results` command line."""

    __slots__ = ("all", "limit", "output", "pipeline", "server", "since")

    def __init__(
        self,
        pipeline: str,
        since: str | None = None,
        limit: int = DEFAULT_LIMIT,
        all: bool = False,
        server: str | None = None,
        output: str = "table",
    ) -> None:
        self.pipeline, self.since, self.limit, self.all = pipeline, since, limit, all
        self.server, self.output = server, output

    def __repr__(self) -> str:
        return f"Options({', '.join(f'{k}={getattr(self, k)!r}' for k in self.__slots__)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Options) and all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    __hash__ = None  # type: ignore[assignment]


class Failed(Exception):
    """The command cannot answer: `code` is its exit code, the message what to tell the user."""

    def __init__(self, code: int, message: str, lines: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.lines = list(lines)


# -- the command line --------------------------------------------------------------------------------------------------
_VALUED = {
    "--pipeline": "pipeline", "-p": "pipeline", "--since": "since", "--limit": "limit",
    "--server": "server", "-s": "server", "--output": "output", "-o": "output",
}  # fmt: skip


def parse(argv: Sequence[str]) -> Options | None:
    """The options of `odinctl results ARGV` when the command line is well formed, else None: typer then parses it
    and answers `--help` or the usage error exactly as for any other command. Accepts what click accepts for these
    options (`--name value`, `--name=value`, `-n value`, `-nvalue`; the last of a repeated option wins)."""
    found: dict[str, str] = {}
    everything = False
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--all":
            everything = True
            continue
        name, value = arg, None
        if arg.startswith("--") and "=" in arg:
            name, value = arg.split("=", 1)
        elif len(arg) > 2 and arg[0] == "-" and arg[1] != "-":
            name, value = arg[:2], arg[2:]
        if name not in _VALUED:
            return None
        if value is None:
            if not args:
                return None
            value = args.pop(0)
        found[_VALUED[name]] = value
    if "pipeline" not in found or found.get("output", "table") not in OUTPUTS:
        return None
    limit = DEFAULT_LIMIT
    if "limit" in found:
        text = found["limit"].strip()
        if not text.lstrip("-").isdigit() or not 1 <= int(text) <= MAX_LIMIT:
            return None
        limit = int(text)
    return Options(
        pipeline=found["pipeline"],
        since=found.get("since"),
        limit=limit,
        all=everything,
        server=found.get("server"),
        output=found.get("output", "table"),
    )


# -- the server --------------------------------------------------------------------------------------------------------
def resolve_server(server: str | None) -> str:
    """As every odinctl command: `--server`, `$ODIN_SERVER`, the last server logged in to, the default."""
    return (server or os.environ.get("ODIN_SERVER") or credentials.default_server() or DEFAULT_SERVER).rstrip("/")


def _tls_context(url: str) -> Any:
    """For https, the CAs httpx would trust (the other commands' client): `SSL_CERT_FILE`/`SSL_CERT_DIR`, else
    certifi's bundle (installed with httpx), else the system's."""
    if not url.startswith("https:"):
        return None
    import ssl

    cafile, capath = os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
    if not cafile and not capath:
        try:  # httpx's bundle (it depends on certifi); without it, the system's CAs
            import certifi

            cafile = certifi.where()
        except ImportError:
            pass
    return ssl.create_default_context(cafile=cafile or None, capath=capath or None)


def _api_error(status: int, body: bytes, reason: str) -> Failed:
    """The server's error answer as the other commands report it (odin.api.client.errors.api_error)."""
    try:
        data = json.loads(body)
    except ValueError:
        detail, extra = (body.decode(errors="replace").strip()[:500] or reason), None
    else:
        if isinstance(data, dict):
            detail = str(data.get("detail") or data.get("message") or reason)
            extra = data.get("extra")
            problems = extra.get("problems") if isinstance(extra, dict) else None
            if isinstance(extra, list) and extra:
                detail = f"{detail}: " + "; ".join(
                    str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in extra
                )
            extra = problems if problems is not None else extra
        else:
            detail, extra = str(data), None
    lines = [
        f"  {p['file']}:{p['line']}:{p['column']}: {p['message']}"
        for p in (extra if isinstance(extra, list) else [])
        if isinstance(p, dict) and {"file", "line", "column", "message"} <= p.keys()
    ]
    hint = " (log in again: `odinctl login`)" if status == 401 else ""
    code = EXIT_SERVER if status in (401, 403) or status >= 500 else EXIT_FAILED
    return Failed(code, f"{detail}{hint}", lines)


def fetch(url: str, token: str, query: dict[str, Any]) -> dict[str, Any]:
    """One page of `GET /v1/results`, decoded; `Failed` with the exit code of an error answer or no answer."""
    import http.client
    from urllib.error import HTTPError, URLError
    from urllib.parse import urlencode
    from urllib.request import Request, urlopen

    if not url.startswith(("http://", "https://")):
        raise Failed(EXIT_SERVER, f"cannot reach {url}: the server's URL starts with http:// or https://")
    request = Request(  # noqa: S310 (the scheme is checked above)
        f"{url}/v1/results?{urlencode({k: v for k, v in query.items() if v is not None})}",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json", "User-Agent": "odinctl"},
    )
    try:
        with urlopen(request, timeout=30, context=_tls_context(url)) as response:  # noqa: S310
            page: dict[str, Any] = json.loads(response.read())
            return page
    except HTTPError as e:
        with e:
            raise _api_error(e.code, e.read(), str(e.reason)) from e
    except URLError as e:
        raise Failed(EXIT_SERVER, f"cannot reach {url}: {e.reason}") from e
    except (OSError, http.client.HTTPException, ValueError) as e:
        raise Failed(EXIT_SERVER, f"cannot reach {url}: {e}") from e


def pages(url: str, token: str, o: Options) -> Iterator[dict[str, Any]]:
    """The pages the command shows: one of `o.limit` runs, or with `o.all` every page to the last."""
    query: dict[str, Any] = {"pipeline": o.pipeline, "since": o.since, "limit": ALL_PAGE if o.all else o.limit}
    if o.all:
        query["all_columns"] = "true"
    page = fetch(url, token, query)
    yield page
    while o.all and page.get("next_cursor"):
        query.pop("all_columns", None)
        page = fetch(url, token, {**query, "cursor": page["next_cursor"]})
        yield page


# -- rendering ---------------------------------------------------------------------------------------------------------
def headings(columns: Sequence[str]) -> list[str]:
    """The header of each `task.result` column: the result's name when unique among the columns."""
    names = [c.split(".", 1)[1] for c in columns]
    return [name if names.count(name) == 1 else column for column, name in zip(columns, names, strict=True)]


def value(row: dict[str, Any], column: str) -> Any:
    task, _, name = column.partition(".")
    return row["results"].get(task, {}).get(name)


def cell(v: Any) -> str:
    if v is None:
        return ""
    return v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))


def when(at: str) -> str:
    """An API time as local time for people (odin.cli.render.when)."""
    from datetime import datetime

    return datetime.fromisoformat(at).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _colour(stream: IO[str]) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def table(columns: Sequence[str], items: Sequence[dict[str, Any]], *, colour: bool = False) -> str:
    """Left-aligned columns two spaces apart, as the other commands' tables (rich, no box); status coloured and the
    header bold on a terminal."""
    header = ["COMMIT", "RUN", "DATE", "STATUS", *(h.upper() for h in headings(columns))]
    rows = [
        [(r["commit_sha"] or "-")[:7], r["run_id"], when(r["created_at"]), r["status"],
         *(cell(value(r, c)) for c in columns)]
        for r in items
    ]  # fmt: skip
    widths = [max(len(line[i]) for line in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str], styles: Sequence[str | None]) -> str:
        out = []
        for text, width, style in zip(cells, widths, styles, strict=True):
            padded = text.ljust(width)
            out.append(f"\x1b[{style}m{text}\x1b[0m{padded[len(text) :]}" if colour and style else padded)
        return "  ".join(out).rstrip() + "\n"

    bold = ["1"] * len(header)
    plain: list[str | None] = [None] * len(header)
    lines = [line(header, bold)]
    for r in rows:
        styles = list(plain)
        styles[3] = _ANSI[_STATUS_COLOUR.get(r[3], "white")]
        lines.append(line(r, styles))
    return "".join(lines)


def csv_rows(columns: Sequence[str], items: Sequence[dict[str, Any]]) -> Iterator[list[str]]:
    """RFC 4180 rows: commit (full SHA), run_id, created_at (ISO 8601), status, then one column per result."""
    from datetime import datetime

    for r in items:
        at = datetime.fromisoformat(r["created_at"]).isoformat()
        yield [r["commit_sha"] or "", r["run_id"], at, r["status"], *(cell(value(r, c)) for c in columns)]


def _indented(obj: Any, level: int) -> str:
    """`obj` as `json.dumps(indent=2)` writes it `level` levels deep inside a document."""
    return json.dumps(obj, indent=2).replace("\n", "\n" + "  " * level)


def write_json(out: IO[str], first: dict[str, Any], rest: Iterator[dict[str, Any]]) -> None:
    """The pages as one JSON document, byte for byte what `json.dumps(document, indent=2)` of a single page holding
    every item would be, written a page at a time (memory stays one page, however many runs)."""
    head = {k: v for k, v in first.items() if k not in ("items", "next_cursor")}
    out.write("{\n")
    for k, v in head.items():
        out.write(f"  {json.dumps(k)}: {_indented(v, 1)},\n")
    out.write('  "items": [')
    written = 0
    for page in _chain(first, rest):
        for item in page["items"]:
            out.write(("," if written else "") + "\n    " + _indented(item, 2))
            written += 1
    out.write("\n  ],\n" if written else "],\n")
    out.write('  "next_cursor": null\n}\n')


def _chain(first: dict[str, Any], rest: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    yield first
    yield from rest


# -- the command -------------------------------------------------------------------------------------------------------
def run(o: Options) -> int:
    """Print the results; the exit code (0, or 1/3 as every odinctl command: docs/cli.md, "Exit codes")."""
    try:
        _run(o)
    except Failed as e:
        red = _colour(sys.stderr)
        sys.stderr.write(("\x1b[31merror:\x1b[0m " if red else "error: ") + f"{e}\n")
        sys.stderr.writelines(line + "\n" for line in e.lines)
        return e.code
    except BrokenPipeError:
        # The reader went away (`| head`): what it wanted it has; keep the interpreter from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _run(o: Options) -> None:
    url = resolve_server(o.server)
    token = os.environ.get("ODIN_TOKEN") or credentials.token_for(url)
    if not token:
        raise Failed(EXIT_SERVER, f"not logged in to {url}: run `odinctl login` (or set ODIN_TOKEN)")
    answers = pages(url, token, o)
    first = next(answers)
    out = sys.stdout
    if o.output == "json" and o.all:
        write_json(out, first, answers)
    elif o.output == "json":
        out.write(json.dumps(first, indent=2) + "\n")
    elif o.output == "csv":
        import csv

        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["commit", "run_id", "created_at", "status", *headings(first["columns"])])
        for page in _chain(first, answers):
            writer.writerows(csv_rows(first["columns"], page["items"]))
    elif o.output == "yaml":
        import yaml

        items = [item for page in _chain(first, answers) for item in page["items"]]
        document = {**first, "items": items, "next_cursor": None if o.all else first.get("next_cursor")}
        out.write(yaml.safe_dump(document, sort_keys=False))
    else:
        items = [item for page in _chain(first, answers) for item in page["items"]]
        if not items:
            sys.stderr.write(f"no runs of {o.pipeline}" + (f" since {o.since}" if o.since else "") + "\n")
            return
        out.write(table(first["columns"], items, colour=_colour(out)))
        if first.get("next_cursor") and not o.all:
            sys.stderr.write(f"(the newest {o.limit} runs; --limit N or --all for more)\n")
    out.flush()
