"""The console's session cookie and its CSRF token: the same JWT as `POST /v1/auth/token`, carried by the browser.

Browsers keep the token in an HttpOnly cookie (page scripts cannot read it, so an injected script cannot steal it),
SameSite=Strict (other sites' pages cannot make the browser send it). Requests that change something must also carry
the CSRF token — an HMAC of the session token, so it needs no server-side state and dies with the session — in the
`X-CSRF-Token` header (scripts) or a `csrf` form field (forms). A request whose `Origin` names another site is refused
whatever it carries. Bearer tokens in an `Authorization` header are not cookies and need none of this.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import urlsplit

COOKIE = "odin_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_token(session_token: str) -> str:
    """The CSRF token of a session: unguessable without the (HttpOnly) session token itself."""
    return hmac.new(session_token.encode(), b"odin console csrf v1", hashlib.sha256).hexdigest()


def csrf_ok(session_token: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(csrf_token(session_token), presented or "")


def cookie_token(cookies: Mapping[str, str]) -> str | None:
    token = cookies.get(COOKIE, "").strip()
    return token or None


def same_origin(headers: Mapping[str, str]) -> bool:
    """False when the request says it comes from a page of another host (`Origin`); absent `Origin` is allowed
    (same-origin GETs and non-browser clients omit it; SameSite=Strict already keeps other sites' requests bare)."""
    origin = headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    host = headers.get("x-forwarded-host") or headers.get("host") or ""
    return urlsplit(origin).netloc.lower() == host.split(",")[0].strip().lower()
