"""`schedule:` and the pipeline's `timeout:` in main.yml (issue 13): the forms, and bad input at file:line:col."""

from __future__ import annotations

from odin.schema.model import PipelineSpec, Schedule
from odin.schema.validate import load_pipeline
from tests.schema.helpers import problems, spec

TASKS = "tasks:\n  - {name: t, image: busybox, command: echo}\n"


def test_a_string_a_mapping_or_a_list_of_them() -> None:
    assert spec('schedule: "0 3 * * *"\n' + TASKS).schedules == (Schedule("0 3 * * *", "UTC", "none"),)
    written = """\
schedule:
  - "@daily"
  - {cron: "0  3 * * 1-5", timezone: Europe/Berlin, catchup: latest}
timeout: 1h30m
"""
    found = spec(written + TASKS)
    assert found.schedules == (Schedule("@daily"), Schedule("0 3 * * 1-5", "Europe/Berlin", "latest"))
    assert found.timeout == 5400.0
    assert PipelineSpec.from_dict(found.to_dict()) == found  # frozen with the run
    plain = spec(TASKS)
    assert (plain.schedules, plain.timeout) == ((), None)
    assert "schedules" not in plain.to_dict() and "timeout" not in plain.to_dict()


def test_an_invalid_cron_expression_is_a_located_problem() -> None:
    (out_of_range,) = problems('schedule: "61 3 * * *"\n' + TASKS)
    assert out_of_range.startswith("1:11: invalid cron expression `61 3 * * *`: ")  # then croniter's words
    assert problems("schedule:\n  - {cron: '0 3 * *'}\n" + TASKS) == [
        "2:12: a cron expression has five fields (minute hour day-of-month month day-of-week), `0 3 * *` has 4"
    ]
    assert problems("schedule: '@fortnightly'\n" + TASKS)[0].startswith("1:11: unknown cron alias `@fortnightly`")


def test_an_unknown_time_zone_or_catch_up_is_a_located_problem() -> None:
    found = problems("schedule:\n  cron: '0 3 * * *'\n  timezone: Europe/Atlantis\n" + TASKS)
    assert found == [
        "3:13: unknown time zone `Europe/Atlantis` (an IANA name such as `Europe/Berlin`, `America/New_York` or `UTC`)"
    ]
    assert problems("schedule: {cron: '0 3 * * *', catchup: sometimes}\n" + TASKS) == [
        "1:40: `schedule.catchup` must be one of none, latest, all, not `sometimes`"
    ]


def test_a_pipeline_timeout_must_be_a_duration() -> None:
    assert problems("timeout: soon\n" + TASKS) == [
        "1:10: `timeout`: `soon` is not a duration (e.g. `90s`, `30m`, `2h`, `1h30m`, `1d`)"
    ]
    assert problems("timeout: 0\n" + TASKS) == ["1:10: `timeout` must be more than 0, not 0"]


PARAMS = "params:\n  epochs: 5\n  lr: {type: number}\n"
PARAM_TASKS = 'tasks:\n  - {name: t, image: x, command: [echo, "${params.epochs}"]}\n'


def test_a_schedule_takes_params_checked_against_the_pipelines_and_they_make_its_key() -> None:
    text = (
        PARAMS
        + 'schedule:\n  - {cron: "0 3 * * *", params: {epochs: 10, lr: 0.1}}\n'
        + '  - {cron: "0 3 * * *", params: {lr: 1}}\n'
    )
    result = load_pipeline((text + PARAM_TASKS).encode(), file="p/main.yml", default_name="p")
    assert result.problems == [] and result.spec is not None
    nightly, other = result.spec.schedules
    assert nightly.params == (("epochs", "10"), ("lr", "0.1")) and other.params == (("lr", "1"),)
    assert nightly.key != other.key and nightly.key.startswith("0 3 * * *@UTC#")
    assert Schedule("0 3 * * *").key == "0 3 * * *@UTC", "a schedule without params keeps its key (and its history)"
    assert PipelineSpec.from_dict(result.spec.to_dict()) == result.spec


def test_a_bad_schedule_param_is_a_problem_at_its_line() -> None:
    text = (
        PARAMS
        + 'schedule:\n  - {cron: "0 3 * * *", params: {lr: 1}}\n'
        + '  - cron: "0 4 * * *"\n    params: {epoch: 3, lr: x}\n  - "0 5 * * *"\n'
    )
    result = load_pipeline((text + PARAM_TASKS).encode(), file="p/main.yml", default_name="p")
    found = [(p.line, p.column, p.message) for p in result.problems]
    assert found == [
        (7, 14, "unknown parameter `epoch` (did you mean `epochs`?)"),
        (7, 28, "parameter `lr`: `x` is not a number"),
        (8, 5, "missing required parameter `lr`"),
    ]
