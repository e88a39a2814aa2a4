"""Signature headers are accepted exactly as each provider writes them, and in no other spelling.

GitHub, Bitbucket (Cloud and Server) and Odin's generic endpoint send `sha256=` and 64 lower-case hex digits; Gitea,
Forgejo and Gogs send the bare lower-case hex digits; GitLab sends the token as configured. A variant no provider sends
(another case, whitespace, another prefix) is a forger's guess and is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from odin.webhooks.providers import PROVIDERS
from tests.webhooks.support import SECRET, Odin, load, point_at

BODY = json.dumps({"ref": "refs/heads/main", "repository": {"clone_url": "https://example.com/acme/ml.git"}}).encode()
DIGEST = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
HMAC_HEADERS = {
    "github": ("x-hub-signature-256", f"sha256={DIGEST}"),
    "bitbucket": ("x-hub-signature", f"sha256={DIGEST}"),
    "generic": ("x-odin-signature", f"sha256={DIGEST}"),
    "gitea": ("x-gitea-signature", DIGEST),
}


def variants(exact: str) -> dict[str, str]:
    """Spellings of `exact` that carry the same digest but that the provider never sends."""
    prefix, _, digest = exact.rpartition("=")
    prefixed = f"{prefix}=" if prefix else ""
    out = {
        "upper-case hex": prefixed + digest.upper(),
        "trailing space": exact + " ",
        "trailing tab": exact + "\t",
        "trailing newline": exact + "\n",
        "leading space": " " + exact,
        "one hex digit short": exact[:-1],
        "one hex digit more": exact + "0",
    }
    if prefix:
        out["upper-case prefix"] = f"{prefix.upper()}={digest}"
        out["mixed-case prefix"] = f"Sha256={digest}"
        out["no prefix"] = digest
        out["sha1 prefix"] = f"sha1={digest}"
        out["space after the prefix"] = f"{prefix}= {digest}"
    else:
        out["sha256= prefix"] = f"sha256={digest}"
    return out


@pytest.mark.parametrize("provider", sorted(HMAC_HEADERS))
def test_the_exact_spelling_verifies(provider: str) -> None:
    name, value = HMAC_HEADERS[provider]
    assert PROVIDERS[provider].verify({name: value}, BODY, [SECRET.encode()])


@pytest.mark.parametrize(
    ("provider", "variant"),
    [(p, v) for p in sorted(HMAC_HEADERS) for v in variants(HMAC_HEADERS[p][1])],
)
def test_every_other_spelling_of_the_right_digest_is_refused(provider: str, variant: str) -> None:
    name, value = HMAC_HEADERS[provider]
    spelled = variants(value)[variant]
    impl = PROVIDERS[provider]
    assert impl.signature_present({name: spelled})
    assert not impl.verify({name: spelled}, BODY, [SECRET.encode()]), f"{provider} accepted {spelled!r}"
    assert impl.check({name: spelled}, [SECRET.encode()]).settled() is False, "refused from the header alone"


@pytest.mark.parametrize("token", [SECRET + " ", " " + SECRET, SECRET.upper(), SECRET + "\n", SECRET[:-1]])
def test_gitlab_accepts_the_token_exactly_as_configured(token: str) -> None:
    gitlab = PROVIDERS["gitlab"]
    assert gitlab.verify({"x-gitlab-token": SECRET}, BODY, [SECRET.encode()])
    assert not gitlab.verify({"x-gitlab-token": token}, BODY, [SECRET.encode()])


def test_over_http_an_upper_case_signature_is_401(odin: Odin) -> None:
    delivery = point_at("github", load("github", "push"), after=odin.remote.head)
    raw = json.dumps(delivery.body).encode()
    digest = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    for spelled in (f"sha256={digest.upper()}", f"SHA256={digest}"):
        res = odin.post("github", raw, {**delivery.headers, "X-Hub-Signature-256": spelled})
        assert res.status_code == 401, (spelled, res.text)
    res = odin.post("github", raw, {**delivery.headers, "X-Hub-Signature-256": f"sha256={digest}"})
    assert res.status_code in (200, 202), res.text
