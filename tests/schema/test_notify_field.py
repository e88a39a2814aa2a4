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
    assert [str(p) for p in result.problems] == [
        ".odin.yml:3:47: `notify[0].webhook.secret`: `hunter2` must be a reference to a secret, "
        "`env:ODIN_NOTIFY_<NAME>`, set in the server's environment: a secret written in the repository is readable "
        "by everyone who can read it"
    ]
    result = load_repo_config(b"notify:\n  - on: [success]\n")
    assert [str(p) for p in result.problems] == [
        ".odin.yml:2:5: a notification names exactly one channel (`slack`, `webhook` or `email`), not none"
    ]
