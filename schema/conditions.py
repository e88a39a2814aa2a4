"""`when:` conditions: a small, safe expression language, parsed at load time and evaluated by the engine.

A task with `when: ${tasks.eval.results.accuracy} > 0.9` runs only if the condition holds once its dependencies are
done; otherwise it is skipped. The language is deliberately tiny, and nothing in it is ever handed to `eval()`:

    condition  := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := operand (("==" | "!=" | "<" | "<=" | ">" | ">=") operand)?
    operand    := "${" name "}" | number | string | "true" | "false" | "(" or ")"

Numbers are JSON's (`0.9`, `-3`, `1e-4`); strings are `"double-quoted"` with JSON escapes or `'single-quoted'`
without any. Comparisons do not chain (`a < b < c` is a problem, not Python's `a < b and b < c`).

Parsing is one left-to-right pass over the text (each token is found with `str.find` or an anchored match), and
nesting (parentheses and `not`) is capped at `MAX_DEPTH`, so a hostile condition costs time linear in its length and
cannot exhaust the stack.

Evaluation is strict rather than clever: `==` between a number and a string holding a number compares numbers
(parameters arrive as strings), ordering needs two numbers or two strings, and `and`/`or`/`not` need booleans
(`true`/`false`, or those words as strings). Anything else raises `ConditionError`, which the engine reports on the
task instead of guessing.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

MAX_DEPTH = 32
"""Deepest nesting of parentheses and `not`: far beyond a readable condition, far below Python's stack."""

COMPARISONS = ("==", "!=", "<=", ">=", "<", ">")
_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STUCK = re.compile(r"[^\s()<>=!&|]+")
"""What follows a number without a space: the rest of the bad word, for the message."""
_KEYWORDS = {"and", "or", "not", "true", "false"}
_MISTAKES = {"&&": "and", "||": "or", "!": "not", "=": "=="}
_CAPITALISED = {"And": "and", "AND": "and", "Or": "or", "OR": "or", "Not": "not", "NOT": "not"}
_CAPITALISED |= {"True": "true", "TRUE": "true", "False": "false", "FALSE": "false"}


class ConditionError(ValueError):
    """A condition that cannot be parsed (with the offset of the culprit in the text), or evaluated."""

    def __init__(self, message: str, offset: int = 0, token: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.token = token


Value = Any
"""What a reference resolves to: a JSON value (a result), a path or URI (an artifact), a string (a variable)."""


@dataclass(frozen=True, slots=True)
class Literal:
    value: str | int | float | bool


@dataclass(frozen=True, slots=True)
class Ref:
    """`${name}`; `offset` is where its `$` is in the condition's text."""

    name: str
    offset: int


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # "and" | "or"
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Compare:
    op: str
    left: Node
    right: Node


Node = Literal | Ref | Not | BoolOp | Compare


@dataclass(frozen=True, slots=True)
class Condition:
    """A parsed condition: its text, its tree, and the `${...}` names it reads, in order of appearance."""

    text: str
    root: Node
    references: tuple[Ref, ...]

    def evaluate(self, values: Mapping[str, Value]) -> bool:
        """True when the task should run. `values` maps each reference's name (`tasks.eval.results.accuracy`,
        `params.threshold`) to its resolved value. Raises `ConditionError` for a missing value or a comparison
        between values that do not compare (a list with a number, a number with a non-numeric string)."""
        return _truth(_evaluate(self.root, values), "the condition")


def parse(text: str) -> Condition:
    """Parse `text` or raise `ConditionError` pointing at the first problem."""
    parser = _Parser(text)
    root = parser.condition()
    return Condition(text, root, tuple(parser.refs))


def evaluate(text: str, values: Mapping[str, Value]) -> bool:
    """`parse(text).evaluate(values)`: the one call the engine needs."""
    return parse(text).evaluate(values)


def literal(value: str | int | float | bool) -> str:
    """`value` as a condition literal: how a sweep's `${matrix.x}` is written into a member's condition."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if math.isfinite(value) else json.dumps(str(value))
    return json.dumps(value)


# -- tokens -----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "ref", "number", "string", "word", "op", "end"
    text: str
    offset: int
    value: Any = None


def _tokens(text: str) -> Iterator[_Token]:
    at = 0
    size = len(text)
    while True:
        while at < size and text[at] in " \t\r\n":
            at += 1
        if at >= size:
            yield _Token("end", "", size)
            return
        char = text[at]
        if text.startswith("${", at):
            closing = text.find("}", at + 2)
            if closing == -1:
                raise ConditionError("unterminated `${` (no closing `}`)", at, "${")
            name = text[at + 2 : closing]
            if not name.strip():
                raise ConditionError("empty reference `${}`", at, "${")
            yield _Token("ref", text[at : closing + 1], at, name)
            at = closing + 1
        elif char in "\"'":
            end = _string_end(text, at)
            raw = text[at : end + 1]
            if char == "'":
                value: Any = raw[1:-1]
            else:
                try:
                    value = json.loads(raw)
                except ValueError:
                    raise ConditionError(f"bad escape in string {_short(raw)}", at, raw) from None
            yield _Token("string", raw, at, value)
            at = end + 1
        elif (match := _NUMBER.match(text, at)) is not None:
            raw = match.group()
            end = match.end()
            if end < size and (text[end].isalnum() or text[end] in "_."):
                stuck = _STUCK.match(text, end)
                whole = text[at : stuck.end() if stuck else end + 1]
                raise ConditionError(f"`{_short(whole)}` is not a number", at, raw)
            value = float(raw) if any(c in raw for c in ".eE") else int(raw)
            yield _Token("number", raw, at, value)
            at = end
        elif (word_match := _WORD.match(text, at)) is not None:
            word = word_match.group()
            yield _Token("word", word, at)
            at = word_match.end()
        else:
            two = text[at : at + 2]
            if two in COMPARISONS or two in _MISTAKES:
                token = two
            elif char in "()<>" or char in _MISTAKES:
                token = char
            else:
                raise ConditionError(f"unexpected `{char}`", at, char)
            if token in _MISTAKES:
                raise ConditionError(f"`{token}` is not an operator here; write `{_MISTAKES[token]}`", at, token)
            yield _Token("op", token, at)
            at += len(token)


def _string_end(text: str, start: int) -> int:
    """The offset of the quote closing the string opened at `start` (a `\\` escapes the next character in a
    double-quoted string). Linear: each candidate quote looks back only over its own run of backslashes."""
    quote = text[start]
    at = start + 1
    while True:
        end = text.find(quote, at)
        if end == -1:
            raise ConditionError("unterminated string (no closing quote)", start, quote)
        if quote == "'":
            return end
        backslashes = 0
        while text[end - 1 - backslashes] == "\\" and end - 1 - backslashes > start:
            backslashes += 1
        if backslashes % 2 == 0:
            return end
        at = end + 1


def _short(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# -- parsing ----------------------------------------------------------------------------------------------------------


class _Parser:
    """Recursive descent over the token stream, one token of look-ahead; recursion only for nesting, capped."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.current = next(self.tokens)
        self.depth = 0
        self.refs: list[Ref] = []

    def advance(self) -> _Token:
        token = self.current
        if token.kind != "end":
            self.current = next(self.tokens)
        return token

    def fail(self, message: str, token: _Token | None = None) -> ConditionError:
        token = token or self.current
        return ConditionError(message, token.offset, token.text)

    def condition(self) -> Node:
        if self.current.kind == "end":
            raise self.fail("the condition is empty")
        node = self.or_()
        if self.current.kind != "end":
            raise self.fail(f"unexpected `{_short(self.current.text)}` after a complete condition")
        return node

    def nested(self, token: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"the condition is nested more than {MAX_DEPTH} deep", token)

    def or_(self) -> Node:
        operands = [self.and_()]
        while self.is_word("or"):
            self.advance()
            operands.append(self.and_())
        return operands[0] if len(operands) == 1 else BoolOp("or", tuple(operands))

    def and_(self) -> Node:
        operands = [self.not_()]
        while self.is_word("and"):
            self.advance()
            operands.append(self.not_())
        return operands[0] if len(operands) == 1 else BoolOp("and", tuple(operands))

    def not_(self) -> Node:
        nots: list[_Token] = []
        while self.is_word("not"):  # a loop, not recursion: `not not not x` costs no stack
            token = self.advance()
            self.nested(token)
            nots.append(token)
        node = self.comparison()
        for _ in nots:
            node = Not(node)
        self.depth -= len(nots)
        return node

    def comparison(self) -> Node:
        left = self.operand()
        if self.current.kind == "op" and self.current.text in COMPARISONS:
            op = self.advance().text
            right = self.operand()
            if self.current.kind == "op" and self.current.text in COMPARISONS:
                raise self.fail("comparisons do not chain; write `a < b and b < c`")
            return Compare(op, left, right)
        return left

    def operand(self) -> Node:
        token = self.current
        if token.kind == "ref":
            self.advance()
            ref = Ref(token.value, token.offset)
            self.refs.append(ref)
            return ref
        if token.kind in ("number", "string"):
            self.advance()
            return Literal(token.value)
        if token.kind == "word" and token.text in ("true", "false"):
            self.advance()
            return Literal(token.text == "true")
        if token.kind == "op" and token.text == "(":
            self.advance()
            self.nested(token)
            node = self.or_()
            self.depth -= 1
            if not (self.current.kind == "op" and self.current.text == ")"):
                raise self.fail(
                    "missing `)`" if self.current.kind == "end" else f"expected `)`, not `{_short(self.current.text)}`"
                )
            self.advance()
            return node
        if token.kind == "end":
            raise self.fail("the condition ends too early: a value is missing")
        if token.kind == "word":
            if token.text in _CAPITALISED:
                raise self.fail(f"`{token.text}`: write `{_CAPITALISED[token.text]}`")
            if token.text in _KEYWORDS:
                raise self.fail(f"`{token.text}` needs a value before it")
            raise self.fail(
                f"unknown word `{_short(token.text)}`: write a value as `${{...}}`, a number, a quoted string, "
                "`true` or `false`"
            )
        raise self.fail(f"expected a value, not `{_short(token.text)}`")

    def is_word(self, word: str) -> bool:
        if self.current.kind != "word":
            return False
        if self.current.text in _CAPITALISED and _CAPITALISED[self.current.text] == word:
            raise self.fail(f"`{self.current.text}`: write `{word}`")
        return self.current.text == word


# -- evaluation -------------------------------------------------------------------------------------------------------


def _evaluate(node: Node, values: Mapping[str, Value]) -> Value:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Ref):
        try:
            return values[node.name]
        except KeyError:
            raise ConditionError(f"no value for `${{{node.name}}}`", node.offset) from None
    if isinstance(node, Not):
        return not _truth(_evaluate(node.operand, values), "the operand of `not`")
    if isinstance(node, BoolOp):
        stop = node.op == "or"  # `or` stops at the first true operand, `and` at the first false one
        for operand in node.operands:
            if _truth(_evaluate(operand, values), f"an operand of `{node.op}`") is stop:
                return stop
        return not stop
    return _compare(node.op, _evaluate(node.left, values), _evaluate(node.right, values))


def _truth(value: Value, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ConditionError(f"{what} is `{_short(json.dumps(value))}`, not true or false")


def _number(value: Value) -> float | int | None:
    """A number, or a string holding exactly one (parameters and variables are strings); else None."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        text = value.strip()
        return float(text) if any(c in text for c in ".eE") else int(text)
    return None


def _compare(op: str, left: Value, right: Value) -> bool:
    a, b = _number(left), _number(right)
    if a is not None and b is not None:
        return _ordered(op, a, b)
    if op in ("==", "!="):
        same = type(left) is type(right) and left == right
        if isinstance(left, bool) or isinstance(right, bool):
            same = _as_bool(left) is not None and _as_bool(left) == _as_bool(right)
        return same if op == "==" else not same
    if isinstance(left, str) and isinstance(right, str):
        return _ordered(op, left, right)
    raise ConditionError(
        f"cannot compare `{_short(json.dumps(left))}` {op} `{_short(json.dumps(right))}`: "
        "ordering needs two numbers or two strings"
    )


def _as_bool(value: Value) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _ordered(op: str, a: Any, b: Any) -> bool:
    if op == "==":
        return bool(a == b)
    if op == "!=":
        return bool(a != b)
    if op == "<":
        return bool(a < b)
    if op == "<=":
        return bool(a <= b)
    if op == ">":
        return bool(a > b)
    return bool(a >= b)
