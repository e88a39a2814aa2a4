"""What a registration may say about its URL: plain http:// only where the server allows it (`ODIN_GIT_ALLOW_HTTP`),
and a refusal that names the setting."""

from __future__ import annotations

import pytest

from odin.controller.repo_specs import InvalidRepoSpec, check_spec

IN_CLUSTER = "http://gitea.svc:3000/acme/ml.git"


def test_plain_http_is_refused_unless_the_server_allows_it() -> None:
    with pytest.raises(InvalidRepoSpec, match=r"unencrypted.*ODIN_GIT_ALLOW_HTTP=true on the server allows it"):
        check_spec({"url": IN_CLUSTER})
    assert check_spec({"url": IN_CLUSTER}, allow_http=True)["url"] == IN_CLUSTER
    with pytest.raises(InvalidRepoSpec, match="password or token") as refused:
        check_spec({"url": "http://bot:tok@gitea.svc:3000/acme/ml.git"}, allow_http=True)
    assert "ODIN_GIT_ALLOW_HTTP" not in str(refused.value), "allowed already: the hint would mislead"
