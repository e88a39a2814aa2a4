"""The text of a notification: a small Jinja2 template rendered in Jinja's immutable sandbox.

Templates come from the repository, so whoever can push writes them: the sandbox refuses attribute tricks
(`__class__`, `mro`), the context holds only plain values (no store handles, no settings), and the output is cut
to `MAX_TEXT` characters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_TEXT = 4000

DEFAULT_TEMPLATE = """\
{{ pipeline }}: run {{ run.id }} {{ headline }}{% if run.branch %} on {{ run.branch }}{% endif %}
{% if commit.sha %}commit {{ commit.short }}{% if commit.author %} by {{ commit.author }}{% endif %}: {{ commit.title }}
{% endif %}{% if failed_task %}failed task: {{ failed_task.name }}
{%- if failed_task.message %} ({{ failed_task.message }}){% endif %}
{% for line in log_lines %}  | {{ line }}
{% endfor %}{% elif run.message and run.status != "succeeded" %}{{ run.message }}
{% endif %}{% if run_url %}{{ run_url }}{% endif %}"""

HEADLINES = {
    "success": "succeeded",
    "failure": "failed",
    "first_failure": "started failing",
    "recovery": "succeeded again (it failed last time)",
}

_ENV = ImmutableSandboxedEnvironment(autoescape=False, keep_trailing_newline=False)


class MessageError(ValueError):
    """The user's template does not compile or fails to render; the message says where."""


@dataclass(frozen=True, slots=True)
class Message:
    subject: str
    text: str


def render(template: str | None, context: dict[str, Any]) -> Message:
    """The message for `context` (see `docs/notifications.md` for its names); its first line is the subject."""
    try:
        text = _ENV.from_string(template or DEFAULT_TEMPLATE).render(
            headline=HEADLINES.get(str(context.get("event")), "ended"), **context
        )
    except TemplateError as e:
        raise MessageError(f"template: {type(e).__name__}: {e}") from None
    text = text.strip()[:MAX_TEXT]
    subject = (text.splitlines() or [""])[0][:200]
    return Message(subject=subject, text=text)
