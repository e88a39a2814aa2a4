"""`notify:` in main.yml and .odin.yml (issue 13 item 6): kept in the frozen spec; secrets only by reference; every
mistake located."""

from __future__ import annotations

from odin.schema import load_pipeline, load_repo_config
from odin.schema.model import PipelineSpec

TASKS = "tasks:\n  - {name: a, image: busybox, command: echo}\n"


def load(yaml: str) -> tuple[PipelineSpec | None, list[str]]:
    result = load_pipeline(yaml.encode(), file="main.yml", default_name="p")
    return result.spec, [str(p) for p in result.problems]


def test_entries_are_kept_in_the_frozen_spec() -> None:
    spec, problems = load(
        TASKS
        + """notify:
  - on: [failure, recovery]
    slack: {webhook: env:ODIN_NOTIFY_SLACK}
  - on: [first_failure]
    template: "{{ pipeline }} broke"
    webhook: {url: https://hooks.acme.example/odin, secret: env:ODIN_NOTIFY_HOOK}
  - on: [success]
    email: {to: [ml@acme.example]}
"""
    )
    assert problems == [] and spec is not None
    assert [sorted(n) for n in spec.notify] == [["on", "slack"], ["on", "template", "webhook"], ["email", "on"]]
    assert PipelineSpec.from_dict(spec.to_dict()) == spec


def test_a_pipeline_without_notify_keeps_its_frozen_spec_unchanged() -> None:
    spec, _ = load(TASKS)
    assert spec is not None and "notify" not in spec.to_dict()


def test_a_secret_written_in_the_file_is_a_located_problem() -> None:
    _, problems = load(
        TASKS
        + """notify:
  - on: [failure]
    slack: {webhook: "https://hooks.slack.com/services/T0/B0/abc"}
  - on: [failure]
    webhook: {url: https://x.example, secret: s3cr3t}
"""
    )
    assert len(problems) == 2
    assert problems[0].startswith("main.yml:5:22:") and "env:ODIN_NOTIFY_<NAME>" in problems[0]
    assert problems[1].startswith("main.yml:7:47:") and "`notify[1].webhook.secret`" in problems[1]


def test_wrong_outcomes_urls_addresses_and_channels_are_located() -> None:
    _, problems = load(
        TASKS
        + """notify:
  - on: [failed]
    webhook: {url: ftp://x.example, secret: env:ODIN_NOTIFY_H}
  - on: [success]
    email: {to: [not-an-address]}
"""
    )
    assert [p.split(": ", 1)[0] for p in problems] == ["main.yml:4:10", "main.yml:5:20", "main.yml:7:18"]
    assert "must be one of success, failure, first_failure, recovery" in problems[0]

    _, problems = load(
        TASKS
        + """notify:
  - on: [success]
    email: {to: [a@acme.example]}
    slack: {webhook: env:ODIN_NOTIFY_S}
  - {on: [failure]}
"""
    )
    one_channel = "a notification names exactly one channel (`slack`, `webhook` or `email`)"
    assert problems == [
        f"main.yml:4:5: {one_channel}, not `slack` and `email`",
        f"main.yml:7:5: {one_channel}, not none",
    ]


def test_odin_yml_carries_notifications_for_every_pipeline() -> None:
    result = load_repo_config(b"notify:\n  - on: [failure]\n    slack: {webhook: env:ODIN_NOTIFY_SLACK}\n")
    assert result.problems == [] and result.config is not None
    assert result.config.notify == ({"on": ["failure"], "slack": {"webhook": "env:ODIN_NOTIFY_SLACK"}},)
    assert result.config.is_default, "notifications filter nothing"

    result = load_repo_config(b"notify:\n  - on: [failure]\n    webhook: {url: https://x.example, secret: hunter2}\n")
    [problem] = result.problems
    assert (problem.line, problem.column) == (3, 47) and "hunter2" not in problem.message
    assert problem.message.startswith("`notify[0].webhook.secret` holds its secret written in the file")
    result = load_repo_config(b"notify:\n  - on: [success]\n")
    assert [str(p) for p in result.problems] == [
        ".odin.yml:2:5: a notification names exactly one channel (`slack`, `webhook` or `email`), not none"
    ]


SLACK_URL = "https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/0123456789abcdefABCDEF"
HMAC_KEY = "s3cr3t-hmac-key-do-not-share"


def test_a_literal_secret_is_never_quoted_in_its_problem() -> None:
    """Problems are shown on the commit, in logs, commit statuses and the API: quoting the secret would spread it."""
    text = (
        TASKS
        + f"""notify:
  - on: [failure]
    slack: {{webhook: "{SLACK_URL}"}}
  - on: [failure]
    webhook: {{url: https://hooks.acme.example/odin, secret: {HMAC_KEY}}}
"""
    )
    result = load_pipeline(text.encode(), file="main.yml", default_name="p")
    messages = [p.message for p in result.problems]
    assert len(messages) == 2
    for message, field in zip(messages, ("notify[0].slack.webhook", "notify[1].webhook.secret"), strict=True):
        assert field in message and "`env:ODIN_NOTIFY_<NAME>`" in message
        assert SLACK_URL not in message and HMAC_KEY not in message
        assert "hooks.slack.com" not in message and "s3cr3t" not in message
    repo = load_repo_config(f"notify:\n  - on: [failure]\n    slack: {{webhook: '{SLACK_URL}'}}\n".encode())
    assert [SLACK_URL in str(p) for p in repo.problems] == [False]


def test_a_mistyped_reference_is_quoted_since_it_holds_no_secret() -> None:
    _, problems = load(TASKS + "notify:\n  - on: [failure]\n    slack: {webhook: env:ODIN_NOTIFY_my-hook}\n")
    assert problems == [
        "main.yml:5:22: `notify[0].slack.webhook`: `env:ODIN_NOTIFY_my-hook` must be `env:ODIN_NOTIFY_<NAME>` "
        "(letters, digits, `_` after the prefix)"
    ]


def test_the_secret_pattern_is_the_schemas() -> None:
    from odin.schema import pipeline_schema, repo_schema
    from odin.schema.notify import SECRET_REFERENCE_PATTERN

    for schema in (pipeline_schema(), repo_schema()):
        assert schema["$defs"]["notifySecret"]["pattern"] == SECRET_REFERENCE_PATTERN
