"""`main.yml.jinja2`: rendered in a sandbox, bounded in size and time, problems pointing at template lines."""

from __future__ import annotations

import subprocess
import sys
import time
from textwrap import dedent

import pytest

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


HOSTILE = {
    "power": ("{% set n = 10 ** 7 %}{{ (7 ** n) % 7 }}", "is a number of more than 4096 bits"),
    "repetition": ("{{ 'x' * 10**10 }}", "makes 10,000,000,000 characters"),
    "center": ("a: {{ 'x'|center(10**9) }}", "center makes 1,000,000,000 characters"),
    "nested loops": (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "rendering took longer than 2 s",
    ),
    "nested loops without calls": (
        "{% set s = 'ab' * 100000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}",
        "rendering took longer than 2 s",
    ),
    "recursive macro": ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "recursion too deep"),
    "doubling with ~": (
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "joining with ~ makes",
    ),
    "doubling with +": (
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
        "adding makes",
    ),
    "doubling a list": (
        "{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% if ns.l.extend(ns.l) %}{% endif %}{% endfor %}",
        "list.extend makes",
    ),
    "doubling macros": (
        "{% macro d(s, n) %}{% if n %}{{ d(s, n-1) }}{{ d(s, n-1) }}{% else %}{{ s }}{% endif %}{% endmacro %}"
        "{% set x = d('x' * 1000, 30) %}",
        "a block's output passes",
    ),
    "squaring": (
        "{% set ns = namespace(x=3) %}{% for i in range(64) %}{% set ns.x = ns.x * ns.x %}{% endfor %}",
        "is a number of more than 4096 bits",
    ),
    "printf width": ("{{ '%1000000000d' % 1 }}", "formatting with % makes"),
    "format filter width": ("{{ '%*d'|format(1000000000, 1) }}", "formatting with % makes"),
    "str.format width": ("{{ '{:1000000000}'.format(1) }}", "str.format makes"),
    "str.ljust": ("{{ 'x'.ljust(10**9) }}", "str.ljust makes"),
    "str.expandtabs": ("{{ ('\t' * 100000).expandtabs(100000) }}", "str.expandtabs makes"),
    "join filter": ("{{ ('x' * 100000)|join('y' * 100000) }}", "join makes"),
    "str.join": ("{{ ('y' * 100000).join('x' * 100000) }}", "str.join makes"),
    "replace filter": ("{{ ('x' * 100000)|replace('x', 'y' * 100000) }}", "replace makes"),
    "indent filter": ("{{ ('\n' * 100000)|indent(100000) }}", "indent makes"),
    "wordwrap of a long word": ("{{ ('x' * 500000)|wordwrap(1, wrapstring='') }}", "takes too long"),
    "batch filler": ("{{ [1]|batch(10**9, 0)|list|length }}", "batch makes 1,000,000,000 items"),
    "writing a huge list": ("{{ ['x' * 1000000] * 1000 }}", "writing this value makes more than"),
    "quadratic sum": (
        "{{ range(100000)|map('string')|map('list')|sum(start=[])|length }}",
        "rendering took longer than 2 s",
    ),
    "bytes": ("{{ 'x'.encode() * 10**10 }}", "repeating a bytes 10000000000 times"),
    "bytes.center": ("{{ 'x'.encode().center(10**9) }}", "bytes.center makes"),
    "str.translate": ("{{ ('x' * 100000).translate({120: 'y' * 100000}) }}", "str.translate makes"),
    "lipsum": ("{{ lipsum(10**9) }}", "lipsum(1000000000, max=100) writes up to"),
    "nested str.format width": ("{{ '{0:{1}}'.format(1, 10**9) }}", "str.format makes"),
    "deep nesting": ("{{ " + "(" * 100000 + "1" + ")" * 100000 + " }}", "nested too deeply"),
}


@pytest.mark.parametrize("source, message", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_template_that_would_compute_or_allocate_without_bound_is_a_problem_within_its_deadline(
    source: str, message: str
) -> None:
    started = time.monotonic()
    rendered, problems = render_template(source.encode(), file="t")
    assert time.monotonic() - started < 3, "the renderer must stop within about its 2 s deadline"
    assert rendered is None and len(problems) == 1
    assert message in problems[0].message, str(problems[0])


def test_the_template_line_of_a_refused_operation_is_given() -> None:
    _, problems = render_template(b"a: 1\nb: 2\nc: {{ 'x' * 10**10 }}\n", file="t")
    assert [(p.line, p.message.split(":")[0]) for p in problems] == [(3, "not allowed in a template")]


def test_ordinary_arithmetic_formatting_and_filters_still_render() -> None:
    source = dedent("""\
        {% set ns = namespace(total=0, names=[]) %}
        {% for i in range(3) %}
        {% set ns.total = ns.total + 2 ** 10 * i %}{% if ns.names.append('t' ~ i) %}{% endif %}
        t{{ i }}: "{{ '%02d' % i }} {{ '{:>3}'.format(i) }} {{ 'ab' * 2 }} {{ 'x'|center(5) }} {{ [i, 1]|join(',') }}"
        {% endfor %}
        total: {{ ns.total }}
        names: {{ ns.names|join(' ')|replace('t', 'n')|wordwrap(4)|indent(2)|tojson }}
        sum: {{ [[1], [2]]|sum(start=[]) }} {{ [1, 2, 3]|batch(2, 0)|list }} {{ '%(a)s-%(a)s'|format(a='z') }}
        """)
    rendered, problems = render_template(source.encode(), file="t")
    assert problems == [] and rendered is not None
    assert [line for line in rendered.text.split("\n") if line] == [
        't0: "00   0 abab   x   0,1"',
        't1: "01   1 abab   x   1,1"',
        't2: "02   2 abab   x   2,1"',
        "total: 3072",
        'names: "n0\\n  n1\\n  n2"',
        "sum: [1, 2] [[1, 2], [3, 0]] z-z",
    ]


def test_running_out_of_memory_while_rendering_is_a_problem_not_a_crash() -> None:
    # 1,000 distinct strings of 1 MB, each within the limits, in a process that may use 512 MiB.
    source = (
        "{% set ns = namespace(keep=[]) %}{% for i in range(1000) %}"
        "{% if ns.keep.append(('x' * 1000000) ~ i) %}{% endif %}{% endfor %}"
    )
    script = dedent(f"""\
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (512 << 20, resource.RLIM_INFINITY))
        from odin.schema.template import render_template
        rendered, problems = render_template({source!r}.encode(), file="t", seconds=600)  # memory, not time, ends it
        print([str(p) for p in problems])
        """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "['t:1:1: rendering ran out of memory; stopped']"
