"""Characters no request may carry, refused once for every route before any handler, store or git call sees them.

A NUL byte is valid JSON (`"\\u0000"`) and valid in a URL (`%00`), but Postgres cannot store it (the driver raised,
the route answered 500) and SQLite stores it silently; other control characters in a path or a query (`%0A`) forge
lines in logs and never belong in a run id, a user name, a ref or a pipeline. So:

- the path and every query parameter (name and value) must be free of control characters (U+0000-U+001F, U+007F);
- JSON bodies must be free of NUL in every string, keys included (other control characters are legitimate there:
  a pipeline file sent for validation has newlines and tabs).

Webhook bodies are left to their receivers: nothing reads a webhook body before its signature is verified, and the
receiver refuses NUL in what it uses once it is. The store refuses NUL as well (`InvalidText`), for every writer.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_JSON_NUL = b"\\u0000"
_UNCHECKED_BODY_PREFIXES = ("/webhooks/",)
_MAX_DEPTH = 64


def control_character(text: str) -> str | None:
    """A description of the first control character in `text` (`NUL (\\x00)`, `control character \\n`), or None."""
    found = _CONTROL.search(text)
    if found is None:
        return None
    char = found.group()
    return "a NUL character (\\x00)" if char == "\0" else f"a control character ({char!r})"


def nul_in(value: Any, where: str = "body", depth: int = 0) -> str | None:
    """Where (`body.params.who`) a decoded JSON value first holds a NUL, in a string or a key; None if nowhere."""
    if isinstance(value, str):
        return where if "\0" in value else None
    if depth > _MAX_DEPTH:  # decoded JSON is bounded by the body cap; this only bounds the walk itself
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and "\0" in key:
                return f"{where} (a key)"
            found = nul_in(item, f"{where}.{key}", depth + 1)
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = nul_in(item, f"{where}[{i}]", depth + 1)
            if found is not None:
                return found
    return None


async def reject_bad_characters(request: Request[Any, Any, Any]) -> None:
    """`before_request` hook: a 400 naming the part of the request that holds a forbidden character."""
    path = request.scope.get("path", "")
    problem = control_character(path)
    if problem is not None:
        raise ValidationException(f"the URL path contains {problem}; remove it (ids and names never contain one)")
    for name, value in request.query_params.multi_items():
        problem = control_character(name) or control_character(value)
        if problem is not None:
            raise ValidationException(f"query parameter {name!r} contains {problem}; remove it")
    if request.method not in ("POST", "PUT", "PATCH") or path.startswith(_UNCHECKED_BODY_PREFIXES):
        return
    if "json" not in request.headers.get("content-type", "json"):
        return
    body = await request.body()  # cached on the scope: the handler reads the same bytes without reading again
    if _JSON_NUL not in body:  # the cheap test first; a raw NUL byte is not valid JSON and fails parsing anyway
        return
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return  # the handler reports the malformed body
    where = nul_in(data)
    if where is not None:
        raise ValidationException(f"{where} contains a NUL character (\\u0000); remove it")
