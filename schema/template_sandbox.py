"""The sandbox `main.yml.jinja2` is rendered in: every way a template can make the renderer compute or allocate
without bound is checked *before* the work is done.

Jinja2's `SandboxedEnvironment` refuses Python internals, but it lets `7 ** 10 ** 7` run for seconds (holding the
GIL: the whole server stops) and `'x' * 10 ** 10` allocate 10 GB. A deadline checked between operations cannot stop
one operation that never returns, so the operations themselves are bounded here:

* **Numbers**: `**` and `*` refuse a result over `MAX_INT_BITS` bits (a pipeline needs small numbers).
* **Sizes**: `*` and `+` on strings and lists, `~`, `%` formatting, `str.format`, the buffers of macros and
  `{% set %}` blocks, the output of `{{ }}`, the filters that take a size (`center`, `indent`, `wordwrap`, `format`,
  `join`, `replace`, `batch`, `slice`, `string`, `pprint`, `tojson`) and the string and list methods that grow
  (`center`, `ljust`, `rjust`, `zfill`, `expandtabs`, `replace`, `translate`, `join`, `extend`, `append`, `insert`)
  and `lipsum()` refuse a result over `max_chars` characters (the size limit of a `main.yml`) or `MAX_ITEMS` items.
* **Time**: every call, attribute and item lookup and every loop iteration checks the deadline (`OverTime`), so
  nested loops over `range(100000)` stop at the deadline instead of running for hours; `sum` adds with checks.

Whatever is missed here (a construct no one thought of) is still bounded by where rendering runs: the controller's
validation workers, with a CPU-time and a memory limit (`odin.controller.validation`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import BuiltinMethodType
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.exceptions import SecurityError
from jinja2.filters import (
    do_batch,
    do_center,
    do_format,
    do_indent,
    do_pprint,
    do_replace,
    do_tojson,
    do_wordwrap,
    make_attrgetter,
    sync_do_join,
    sync_do_slice,
)
from jinja2.runtime import Context, markup_join, str_join
from jinja2.sandbox import SandboxedEnvironment, SandboxedFormatter
from jinja2.utils import generate_lorem_ipsum, pass_context, pass_environment, pass_eval_context
from jinja2.visitor import NodeTransformer
from markupsafe import Markup, soft_str

MAX_INT_BITS = 4096
"""The largest integer (in bits) arithmetic in a template may produce: 1,233 decimal digits."""
MAX_ITEMS = 1 << 20
"""The most items a list built in a template may hold."""
LIPSUM_WORDS = 100_000
"""The most words `lipsum()` may write (its loop makes no call the deadline could check)."""
WORDWRAP_WORK = 50_000_000
"""`wordwrap` splits a word longer than its width in time quadratic in the word's length: the most work it may do."""

_TICKING = "_odin_ticking"
_CONCAT = "_odin_concat"


class OverTime(Exception):
    """Rendering passed its deadline."""


class OverLimit(SecurityError):
    """An operation would produce a result larger than a template may make; raised before computing it."""


class _Bounding(NodeTransformer):
    """Rewrites the parsed template: each `{% for %}` iterates through a filter that checks the deadline, and each
    `~` joins through a filter that checks the size of the result first (both filters take the context, so Jinja
    never evaluates them at compile time)."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, _TICKING, [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        items = nodes.List(list(node.nodes), lineno=node.lineno)
        return nodes.Filter(items, _CONCAT, [], [], None, None, lineno=node.lineno)


class BoundedEnvironment(SandboxedEnvironment):
    """The sandbox with a deadline and bounded operations (see the module's docstring)."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, deadline: float, max_chars: int, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(
            undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False, finalize=self._finalize
        )
        self.deadline = deadline  # on `clock`
        self.clock = clock
        self.max_chars = max_chars
        self.concat = self._bounded_join  # type: ignore[method-assign]  # macros, `{% set %}` and filter blocks
        self.filters.update(_bounded_filters(self))
        self.globals["lipsum"] = self._lipsum

    # -- time

    def tick(self) -> None:
        if self.clock() > self.deadline:
            raise OverTime

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        __self.tick()
        if isinstance(__obj, BuiltinMethodType):
            args = _check_method(__self, __obj, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def getattr(self, obj: Any, attribute: str) -> Any:
        self.tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        self.tick()
        return super().getitem(obj, argument)

    def ticking(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            self.tick()
            yield item

    # -- sizes

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        bounded: nodes.Template = _Bounding().visit(tree)
        return bounded

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            self._check_power(left, right)
        elif operator == "*":
            self._check_product(left, right)
        elif operator == "+":
            self._check_sum(left, right)
        elif operator == "%" and isinstance(left, str):
            self.check_printf(left, right)
        return super().call_binop(context, operator, left, right)

    def _check_power(self, left: Any, right: Any) -> None:
        if _is_int(left) and _is_int(right) and right > 0 and abs(left) > 1:
            bits = (abs(left).bit_length() - 1) * right + 1  # at least this many
            if bits > MAX_INT_BITS:
                raise OverLimit(f"{_short(left)} ** {_short(right)} is a number of more than {MAX_INT_BITS} bits")

    def _check_product(self, left: Any, right: Any) -> None:
        if _is_int(left) and _is_int(right):
            if left.bit_length() + right.bit_length() - 1 > MAX_INT_BITS:
                raise OverLimit(f"{_short(left)} * {_short(right)} is a number of more than {MAX_INT_BITS} bits")
            return
        sequence, count = (left, right) if _is_int(right) else (right, left)
        if _is_int(count) and isinstance(sequence, str | bytes | list | tuple):
            self.check_length(sequence, len(sequence) * count, f"repeating a {type(sequence).__name__} {count} times")

    def _check_sum(self, left: Any, right: Any) -> None:
        if isinstance(left, str | bytes | list | tuple) and isinstance(right, str | bytes | list | tuple):
            self.check_length(left, len(left) + len(right), "adding")

    def check_length(self, kind: Any, length: int, what: str) -> None:
        """Refuse a string over `max_chars` characters, or a list over `MAX_ITEMS` items."""
        limit, unit = (self.max_chars, "characters") if isinstance(kind, str | bytes) else (MAX_ITEMS, "items")
        if length > limit:
            raise OverLimit(f"{what} makes {length:,} {unit}; the limit in a template is {limit:,}")

    def check_size(self, value: Any, what: str) -> None:
        """Refuse a value whose text would be over `max_chars` characters."""
        size = text_size(value, self.max_chars)
        if size > self.max_chars:
            raise OverLimit(f"{what} makes more than {self.max_chars:,} characters, the limit in a template")

    def check_printf(self, template: str, values: Any) -> None:
        """`template % values`: the sum of the widths, precisions and values it formats, before formatting."""
        positional = list(values) if isinstance(values, tuple) else [values]
        mapping = values if isinstance(values, Mapping) else None
        size = len(template)
        for spec in _PRINTF.finditer(template):
            for number in (spec["width"], spec["precision"]):
                if number == "*":
                    star = positional.pop(0) if positional else 0
                    size += star if _is_int(star) else 0
                elif number:
                    size += int(number)
            if spec["type"] == "%":
                continue
            if spec["key"] is not None and mapping is not None:
                value = mapping.get(spec["key"], "")
            else:
                value = positional.pop(0) if positional else ""
            size += text_size(value, self.max_chars)
            if size > self.max_chars:
                break
        self.check_length("", size, "formatting with %")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """`str.format` and `str.format_map` with a formatter that counts what it has written (a field's width and
        precision are checked before it is formatted)."""
        if not isinstance(value, BuiltinMethodType) or value.__name__ not in ("format", "format_map"):
            return None
        owner = value.__self__
        if not isinstance(owner, str) or isinstance(owner, Markup):
            return super().wrap_str_format(value)
        is_map = value.__name__ == "format_map"

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                return _CountingFormatter(self).vformat(owner, (), args[0])
            return _CountingFormatter(self).vformat(owner, args, kwargs)

        return wrapper

    def _bounded_join(self, parts: Iterable[str]) -> str:
        collected: list[str] = []
        size = 0
        for part in parts:
            size += len(part)
            if size > self.max_chars:
                raise OverLimit(f"a block's output passes {self.max_chars:,} characters, the limit in a template")
            collected.append(part)
        return "".join(collected)

    def _lipsum(self, n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
        if _is_int(n) and _is_int(max) and n * max > LIPSUM_WORDS:
            raise OverLimit(f"lipsum({n}, max={max}) writes up to {n * max:,} words; the limit is {LIPSUM_WORDS:,}")
        return generate_lorem_ipsum(n, html, min, max)

    def _finalize(self, value: Any) -> Any:
        if not isinstance(value, str):
            self.check_size(value, "writing this value")
        return value


class _CountingFormatter(SandboxedFormatter):
    def __init__(self, environment: BoundedEnvironment) -> None:
        super().__init__(environment)
        self.bounded = environment
        self.written = 0

    def format_field(self, value: Any, format_spec: str) -> Any:
        spec = _FORMAT_SPEC.match(format_spec)
        widths = sum(int(n) for n in spec.groups() if n) if spec else 0
        self.written += widths + text_size(value, self.bounded.max_chars)
        self.bounded.check_length("", self.written, "str.format")
        return super().format_field(value, format_spec)


_PRINTF = re.compile(
    r"%(?:\((?P<key>[^)]*)\))?[-#0 +]*(?P<width>\*|\d+)?(?:\.(?P<precision>\*|\d*))?[hlL]?(?P<type>[a-zA-Z%])?"
)
_FORMAT_SPEC = re.compile(r"(?:.?[<>=^])?[-+ ]?z?#?0?(\d+)?[,_]?(?:\.(\d+))?")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _short(value: Any) -> str:
    if _is_int(value) and value.bit_length() > 64:
        return f"(a {value.bit_length()}-bit number)"
    return repr(value)


def text_size(value: Any, limit: int) -> int:
    """About how many characters `str(value)` has, counted without building it; stops counting past `limit`."""
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, list | tuple | set | frozenset):
            total += 2 + 2 * len(item)
            stack.extend(item)
        elif isinstance(item, dict):
            total += 2 + 4 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif _is_int(item):
            total += item.bit_length() // 3 + 1
        else:
            total += 24
    return total


def _check_method(environment: BoundedEnvironment, method: Any, args: tuple[Any, ...], kwargs: Any) -> tuple[Any, ...]:
    """Check a call of a string or list method that can grow its result; the arguments to call it with (an iterable
    given to `join` or `extend` is read into a list to be counted)."""
    owner, name = getattr(method, "__self__", None), method.__name__
    if isinstance(owner, str | bytes):
        what = f"{type(owner).__name__}.{name}"
        if name in ("center", "ljust", "rjust", "zfill") and args and _is_int(args[0]):
            environment.check_length(owner, args[0], what)
        elif name == "expandtabs":
            tabsize = args[0] if args else kwargs.get("tabsize", 8)
            if _is_int(tabsize):
                tab: Any = "\t" if isinstance(owner, str) else b"\t"
                environment.check_length(owner, len(owner) + owner.count(tab) * tabsize, what)
        elif (
            name == "replace"
            and len(args) >= 2
            and isinstance(args[0], str | bytes)
            and isinstance(args[1], str | bytes)
        ):
            environment.check_length(owner, _replaced_length(owner, args[0], args[1], args[2:]), what)
        elif name == "translate" and args and isinstance(args[0], Mapping):
            longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
            environment.check_length(owner, len(owner) * max(longest, 1), what)
        elif name == "join" and args:
            items = _counted(environment, args[0])
            environment.check_length(owner, _joined_length(owner, items, environment.max_chars), what)
            return (items, *args[1:])
    elif isinstance(owner, list):
        if name in ("append", "insert"):
            environment.check_length(owner, len(owner) + 1, f"list.{name}")
        elif name == "extend" and args:
            items = _counted(environment, args[0])
            environment.check_length(owner, len(owner) + len(items), "list.extend")
            return (items, *args[1:])
    return args


def _counted(environment: BoundedEnvironment, iterable: Iterable[Any]) -> Sequence[Any]:
    """`iterable` as a sequence to count: itself when it has a length, else read with deadline checks."""
    if isinstance(iterable, list | tuple | str | range):
        return iterable
    return list(environment.ticking(iterable))


def _replaced_length(s: Any, old: Any, new: Any, rest: Sequence[Any]) -> int:
    """The length of `s.replace(old, new, *rest)` (of a str or bytes), counted without replacing."""
    count = s.count(old) if old else len(s) + 1
    if rest and _is_int(rest[0]) and rest[0] >= 0:
        count = min(count, rest[0])
    return len(s) + count * (len(new) - len(old))


def _joined_length(separator: str | bytes, items: Sequence[Any], limit: int) -> int:
    size = len(separator) * max(len(items) - 1, 0)
    for item in items:
        if size > limit:
            break
        size += text_size(item, limit)
    return size


def _bounded_filters(environment: BoundedEnvironment) -> dict[str, Callable[..., Any]]:
    """The filters that take a size, each checking it first; and the two the rewritten template calls."""
    limit = environment.max_chars

    @pass_context
    def ticking(context: Context, iterable: Iterable[Any]) -> Iterator[Any]:
        return environment.ticking(iterable)

    @pass_context
    def concat(context: Context, parts: list[Any]) -> str:
        environment.check_length("", _joined_length("", parts, limit), "joining with ~")
        join = markup_join if context.eval_ctx.autoescape else str_join
        return join(parts)

    def center(value: str, width: int = 80) -> str:
        if _is_int(width):
            environment.check_length("", max(width, len(soft_str(value))), "center")
        return do_center(value, width)

    def indent(s: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
        text = soft_str(s)
        per_line = len(width) if isinstance(width, str) else width if _is_int(width) else 0
        environment.check_length("", len(text) + (text.count("\n") + 1) * per_line, "indent")
        return do_indent(s, width, first, blank)

    @pass_environment
    def wordwrap(env: Any, s: str, width: int = 79, break_long: bool = True, wrapstring: str | None = None,
                 break_on_hyphens: bool = True) -> str:  # fmt: skip
        text = soft_str(s)
        wrap = env.newline_sequence if wrapstring is None else soft_str(wrapstring)
        lines = len(text) // max(width, 1) + len(text.split()) + 1 if _is_int(width) else len(text) + 1
        environment.check_length("", len(text) + lines * len(wrap), "wordwrap")
        if break_long and _is_int(width) and sum(len(w) ** 2 for w in text.split()) // max(width, 1) > WORDWRAP_WORK:
            raise OverLimit(f"wordwrap({width}) of such long words takes too long; wrap at a larger width")
        return do_wordwrap(env, s, width, break_long, wrapstring, break_on_hyphens)

    def format_(value: str, *args: Any, **kwargs: Any) -> str:
        environment.check_printf(soft_str(value), kwargs or args)
        return do_format(value, *args, **kwargs)

    @pass_eval_context
    def join(eval_ctx: Any, value: Iterable[Any], d: str = "", attribute: str | int | None = None) -> str:
        items = _counted(environment, value)
        if attribute is not None:
            items = [make_attrgetter(environment, attribute)(item) for item in items]
        environment.check_length("", _joined_length(soft_str(d), items, limit), "join")
        return sync_do_join(eval_ctx, items, d)

    @pass_eval_context
    def replace(eval_ctx: Any, s: str, old: str, new: str, count: int | None = None) -> str:
        rest = [] if count is None else [count]
        environment.check_length("", _replaced_length(soft_str(s), soft_str(old), soft_str(new), rest), "replace")
        return do_replace(eval_ctx, s, old, new, count)

    def batch(value: Iterable[Any], linecount: int, fill_with: Any = None) -> Iterator[list[Any]]:
        if _is_int(linecount):
            environment.check_length([], linecount, "batch")
        return do_batch(value, linecount, fill_with)

    def slice_(value: Any, slices: int, fill_with: Any = None) -> Iterator[list[Any]]:
        if _is_int(slices):
            environment.check_length([], slices, "slice")
        return sync_do_slice(value, slices, fill_with)

    @pass_context
    def sum_(context: Context, iterable: Iterable[Any], attribute: str | int | None = None, start: Any = 0) -> Any:
        if attribute is not None:
            iterable = map(make_attrgetter(environment, attribute), iterable)
        total = start
        for item in environment.ticking(iterable):
            total = environment.call_binop(context, "+", total, item)
        return total

    def sized(name: str, function: Callable[..., str]) -> Callable[..., str]:
        def checked(value: Any, *args: Any, **kwargs: Any) -> str:
            environment.check_size(value, name)
            return function(value, *args, **kwargs)

        return checked

    return {
        _TICKING: ticking,
        _CONCAT: concat,
        "center": center,
        "indent": indent,
        "wordwrap": wordwrap,
        "format": format_,
        "join": join,
        "replace": replace,
        "batch": batch,
        "slice": slice_,
        "sum": sum_,
        "string": sized("string", soft_str),
        "pprint": sized("pprint", do_pprint),
        "tojson": pass_eval_context(_sized_eval(environment, "tojson", do_tojson)),
    }


def _sized_eval(environment: BoundedEnvironment, name: str, function: Callable[..., str]) -> Callable[..., str]:
    def checked(eval_ctx: Any, value: Any, *args: Any, **kwargs: Any) -> str:
        environment.check_size(value, name)
        return function(eval_ctx, value, *args, **kwargs)

    return checked


__all__ = ["MAX_INT_BITS", "MAX_ITEMS", "BoundedEnvironment", "OverLimit", "OverTime", "text_size"]
