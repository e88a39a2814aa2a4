"""The generic endpoint: any CI/CD system, script or scheduler that can compute an HMAC.

    POST /webhooks/generic
    X-Odin-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed with the repository's webhook secret>
    {"repo": "https://github.com/acme/ml", "ref": "main", "sha": "<40 hex>"}                          # a push
    {"repo": "...", "sha": "<40 hex>", "pipeline": "train", "params": {"epochs": 3}, "id": "ci-8812-1"}  # a run

Without `pipeline` it is a push notification, handled like any provider's push: a sync of the repository, and the
commit's runs follow from what changed. With `pipeline` it starts that pipeline at `sha` (or `ref`) with `params`,
like `odinctl run`. The `id` is what makes a run request exactly-once: it is inside the signed body (so a captured
request cannot be replayed under a new id), it is required, and a second request with the same id starts nothing
and is answered with the first one's run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from odin.controller.facade import InvalidRef, check_ref
from odin.webhooks.events import MalformedPayload, ParsedEvent, PushEvent, RefUpdate, RunRequest, sha_or_none
from odin.webhooks.providers.base import (
    BodyCheck,
    Headers,
    HmacSha256Check,
    body_digest,
    delivery_id_from,
    exact_hex_signature,
    load_payload,
    text,
    verify_whole,
)

MAX_PARAMS = 200
MAX_ID = 200


class Generic:
    name = "generic"
    signature_header = "x-odin-signature"
    delivery_headers: tuple[str, ...] = ("x-odin-delivery",)

    def signature_present(self, headers: Headers) -> bool:
        return self.signature_header in headers

    def check(self, headers: Headers, secrets: Sequence[bytes]) -> BodyCheck:
        return HmacSha256Check(exact_hex_signature(headers.get(self.signature_header), "sha256="), secrets)

    def verify(self, headers: Headers, body: bytes, secrets: Sequence[bytes]) -> bool:
        return verify_whole(self.check(headers, secrets), body)

    def delivery_id(self, headers: Headers, body: bytes) -> str:
        try:
            data = load_payload(headers, body)
        except MalformedPayload:
            return body_digest(body)
        request_id = data.get("id")
        if (
            isinstance(request_id, str | int)
            and not isinstance(request_id, bool)
            and 0 < len(str(request_id)) <= MAX_ID
        ):
            return f"id:{request_id}"
        return delivery_id_from(headers, body, *self.delivery_headers)

    def parse(self, headers: Headers, body: bytes) -> ParsedEvent:
        data = load_payload(headers, body)
        repo = text(data, "repo")
        if repo is None:
            raise MalformedPayload("`repo` (the repository's URL) is required")
        ref = data.get("ref")
        if ref is not None and (not isinstance(ref, str) or not ref.strip()):
            raise MalformedPayload("`ref` must be a branch or tag name")
        if ref is not None:
            try:  # the one check every ref Odin is given goes through, before any git call
                ref = check_ref(ref)
            except InvalidRef as e:
                raise MalformedPayload(f"`ref`: {e.message}") from e
        sha = data.get("sha")
        if sha is not None and sha_or_none(sha) is None:
            raise MalformedPayload("`sha` must be a full commit SHA (40 hexadecimal digits)")
        pipeline = data.get("pipeline")
        if pipeline is None:
            if "params" in data:
                raise MalformedPayload("`params` needs a `pipeline` to run")
            if ref is None:
                raise MalformedPayload("a push notification needs `ref` (the branch that was pushed)")
            full_ref = ref if ref.startswith("refs/") else f"refs/heads/{ref}"
            return PushEvent("push", (repo,), (RefUpdate(ref=full_ref, before=None, after=sha_or_none(sha)),))
        if not isinstance(pipeline, str) or not pipeline.strip("/ "):
            raise MalformedPayload("`pipeline` must be the pipeline's directory, e.g. `train`")
        request_id = data.get("id")
        if (
            not isinstance(request_id, str | int)
            or isinstance(request_id, bool)
            or not 0 < len(str(request_id)) <= MAX_ID
        ):
            raise MalformedPayload(
                f"a run request needs an `id` of 1 to {MAX_ID} characters (e.g. your CI job's id): Odin starts one "
                "run per id, so a retried request cannot start a second one"
            )
        return RunRequest(
            "run",
            (repo,),
            pipeline=pipeline.strip("/ "),
            ref=ref,  # as given: `refs/tags/main` is the tag, never the branch of the same name
            sha=sha_or_none(sha),
            params=_params(data.get("params")),
        )


def _params(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_PARAMS:
        raise MalformedPayload(f"`params` must be a mapping of at most {MAX_PARAMS} names to values")
    out: dict[str, str] = {}
    for name, v in value.items():
        if isinstance(v, bool):
            out[name] = "true" if v else "false"
        elif isinstance(v, str | int | float):
            out[name] = str(v)
        else:
            raise MalformedPayload(f"parameter `{name}` must be a string, number or boolean")
    return out
