"""`main.yml.jinja2`: rendered in a sandbox, bounded in size and time, problems pointing at template lines."""

from __future__ import annotations

import time
from textwrap import dedent

from odin.schema.template import load_template_pipeline, render_template

SWEEP = dedent("""\
    name: sweep
    tasks:
    {% for lr in lrs.split(",") %}
    - name: train-{{ loop.index }}
      image: &image busybox
      command: sh
      args: ["-c", "echo {{ lr }}"]
    {% endfor %}
    - name: report
      image: busybox
      command: echo
      args: [{{ mode | default("full") }}]
      depnds: null
    """).encode()


def test_a_loop_over_a_parameter_renders_one_task_per_value() -> None:
    rendered, result = load_template_pipeline(
        SWEEP.replace(b"  depnds: null\n", b""), file="p/main.yml.jinja2", default_name="p", params={"lrs": "0.1,0.2"}
    )
    assert result.problems == [], [str(p) for p in result.problems]
    assert result.spec is not None
    assert [t.name for t in result.spec.tasks] == ["train-1", "train-2", "report"]
    assert result.spec.tasks[1].args == ("-c", "echo 0.2")
    assert result.spec.tasks[2].args == ("full",)
    assert rendered is not None and rendered.variables == {"lrs", "mode"}


def test_a_problem_in_the_rendered_file_names_the_template_line_that_wrote_it() -> None:
    _, result = load_template_pipeline(SWEEP, file="p/main.yml.jinja2", default_name="p", params={"lrs": "1"})
    assert [str(p) for p in result.problems] == [
        "p/main.yml.jinja2 (rendered):13:3: unknown field `depnds` in task (did you mean `depends`?) "
        "(from p/main.yml.jinja2 line 13)"
    ]
    _, result = load_template_pipeline(SWEEP, file="p/main.yml.jinja2", default_name="p", params={"lrs": "1,2,3"})
    assert [(p.line, p.message.rsplit("(", 1)[1]) for p in result.problems] == [(23, "from p/main.yml.jinja2 line 13)")]


def test_an_undefined_variable_is_a_problem_naming_it_and_its_line() -> None:
    rendered, problems = render_template(SWEEP, file="main.yml.jinja2", params={})
    assert rendered is None
    assert [str(p) for p in problems] == ["main.yml.jinja2:3:1: undefined variable: 'lrs' is undefined"]


def test_python_internals_are_out_of_reach() -> None:
    _, problems = render_template(b"a: 1\nb: {{ ''.__class__.__mro__ }}\n", file="t")
    assert [(p.line, p.message.split(":")[0]) for p in problems] == [(2, "not allowed in a template")]


def test_a_template_producing_100_mb_stops_at_the_size_limit() -> None:
    started = time.monotonic()
    _, problems = render_template(b"{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", file="t")
    assert time.monotonic() - started < 2
    assert [p.message for p in problems] == [
        "the rendered pipeline passes 1.0 MiB, the limit of a main.yml; rendering stopped"
    ]


def test_a_template_that_loops_stops_at_its_deadline() -> None:
    started = time.monotonic()
    loop = b"x: 1\n{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    _, problems = render_template(loop, file="t", seconds=0.2)
    assert time.monotonic() - started < 2
    assert [str(p) for p in problems] == ["t:2:1: rendering took longer than 0.2 s; stopped"]


def test_syntax_and_runtime_errors_are_located_problems() -> None:
    assert [str(p) for p in render_template(b"a: 1\n{% if %}\n", file="t")[1]] == [
        "t:2:1: template syntax error: Expected an expression, got 'end of statement block'"
    ]
    assert [str(p) for p in render_template(b"a: 1\n\nb: {{ 1 / 0 }}\n", file="t")[1]] == [
        "t:3:1: template failed to render: ZeroDivisionError: division by zero"
    ]
