"""One module per provider; `PROVIDERS` maps the name in `/webhooks/{name}` to its implementation."""

from __future__ import annotations

from odin.webhooks.providers.base import Headers, Provider
from odin.webhooks.providers.bitbucket import Bitbucket
from odin.webhooks.providers.generic import Generic
from odin.webhooks.providers.gitea import Gitea
from odin.webhooks.providers.github import GitHub
from odin.webhooks.providers.gitlab import GitLab

PROVIDERS: dict[str, Provider] = {p.name: p for p in (GitHub(), GitLab(), Gitea(), Bitbucket(), Generic())}

__all__ = ["PROVIDERS", "Bitbucket", "Generic", "GitHub", "GitLab", "Gitea", "Headers", "Provider"]
