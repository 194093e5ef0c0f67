"""The segment query language: text → a small tree, checked field by field.

    list = "news" and attributes.city = "Madrid" and not bounced

A query is comparisons ``FIELD OP VALUE`` joined by ``and``, ``or``, ``not`` and parentheses
(``not`` binds tightest, then ``and``, then ``or``). Fields: ``email``, ``name``, ``status``,
``list`` (a list slug the person is confirmed on), ``attributes.KEY`` (or
``attributes."KEY with spaces"``), ``subscribed_at``, ``confirmed_at``, ``received`` (an issue
id), ``bounced`` (``true``/``false``; ``bounced`` alone means ``bounced = true``). Operators:
``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``contains``, ``in [v, …]``. Strings in double
quotes (``\\"`` and ``\\\\`` inside), numbers as written, dates as ``"YYYY-MM-DD"``.

Every error is a :class:`SegmentQueryError` whose ``position`` is the 1-based column of the
character at fault, so a form can point at it. Nothing here touches the database: the tree is
turned into SQL, with every value a bound parameter, by ``compile.py``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Union

from newsletter.errors import ValidationError

#: the longest query accepted (a saved filter, not a program)
MAX_QUERY = 4000
#: how deep parentheses and ``not`` may nest (the parser recurses)
MAX_DEPTH = 40
#: the most values one ``in [..]`` may hold
MAX_IN_VALUES = 500
#: the largest issue id (INTEGER on PostgreSQL)
MAX_ISSUE_ID = 2**31 - 1

Scalar = Union[str, int, float, bool, date]  # noqa: UP007 (a runtime alias)
Value = Union[Scalar, tuple[Scalar, ...]]  # noqa: UP007


class SegmentQueryError(ValidationError):
    """A query that does not parse or does not fit its fields.

    ``position`` is the 1-based column of the character at fault; ``reason`` says what is
    wrong without the position (``message`` says both).
    """

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"at column {position}: {reason}", field="query")
        self.position = position
        self.reason = reason


# --- the tree -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """``field [.key] op value``; ``position`` is the field's column."""

    field: str
    op: str
    value: Value
    key: str | None = None
    position: int = 1


@dataclass(frozen=True)
class And:
    left: Node
    right: Node


@dataclass(frozen=True)
class Or:
    left: Node
    right: Node


@dataclass(frozen=True)
class Not:
    operand: Node


Node = Union[Comparison, And, Or, Not]  # noqa: UP007

OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "contains", "in")
ORDERING = ("<", "<=", ">", ">=")
FIELDS = (
    "email", "name", "status", "list", "attributes", "subscribed_at", "confirmed_at",
    "received", "bounced",
)
STATUSES = ("active", "blocklisted")
#: what an attribute key may hold: SQLite puts it in a JSON path, so no quotes or backslashes
ATTRIBUTE_KEY = re.compile(r"^[^\"\\\x00-\x1f]{1,100}$")

#: the operators each field takes
_FIELD_OPS: dict[str, tuple[str, ...]] = {
    "email": OPERATORS,
    "name": OPERATORS,
    "attributes": OPERATORS,
    "status": ("=", "!=", "in"),
    "list": ("=", "!=", "in"),
    "received": ("=", "!=", "in"),
    "bounced": ("=", "!="),
    "subscribed_at": ("=", "!=", "<", "<=", ">", ">="),
    "confirmed_at": ("=", "!=", "<", "<=", ">", ">="),
}


# --- tokens -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # word, string, number, op, punct, end
    text: str
    value: object
    position: int  # 1-based column


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_SPACE = re.compile(r"\s+")


def tokenize(text: str) -> list[Token]:
    """The query's tokens, ending with an ``end`` token.

    :raises SegmentQueryError: an unknown character or an unterminated string.
    """
    tokens: list[Token] = []
    index = 0
    while index < len(text):
        char = text[index]
        column = index + 1
        space = _SPACE.match(text, index)
        if space:
            index = space.end()
            continue
        if char in "()[],.":
            tokens.append(Token("punct", char, char, column))
            index += 1
            continue
        if char in "=!<>":
            two = text[index : index + 2]
            if two in ("!=", "<=", ">="):
                tokens.append(Token("op", two, two, column))
                index += 2
                continue
            if char == "!":
                raise SegmentQueryError(column, 'expected "!=" (use "not" to negate)')
            tokens.append(Token("op", char, char, column))
            index += 1
            continue
        if char == '"':
            value, index = _string(text, index)
            tokens.append(Token("string", text[column - 1 : index], value, column))
            continue
        number = _NUMBER.match(text, index)
        if number:
            literal = number.group()
            value_n: int | float = float(literal) if "." in literal else int(literal)
            tokens.append(Token("number", literal, value_n, column))
            index = number.end()
            continue
        word = _WORD.match(text, index)
        if word:
            tokens.append(Token("word", word.group(), word.group().lower(), column))
            index = word.end()
            continue
        raise SegmentQueryError(column, f"unexpected character {char!r}")
    tokens.append(Token("end", "", None, len(text) + 1))
    return tokens


def _string(text: str, start: int) -> tuple[str, int]:
    """The string that starts with the quote at ``start``, and the index after it."""
    out: list[str] = []
    index = start + 1
    while index < len(text):
        char = text[index]
        if char == '"':
            return "".join(out), index + 1
        if char == "\\":
            following = text[index + 1 : index + 2]
            if following not in ('"', "\\"):
                raise SegmentQueryError(index + 1, 'only \\" and \\\\ may follow a backslash')
            out.append(following)
            index += 2
            continue
        if char in "\r\n\x00":
            break
        out.append(char)
        index += 1
    raise SegmentQueryError(start + 1, "this string has no closing quote")


# --- the parser ---------------------------------------------------------------------------


def parse(text: str) -> Node:
    """The tree of a query.

    :raises SegmentQueryError: the query is empty, too long, does not parse, or compares a
        field with an operator or value it does not take.
    """
    if len(text) > MAX_QUERY:
        raise SegmentQueryError(MAX_QUERY + 1, f"a query has at most {MAX_QUERY} characters")
    parser = _Parser(tokenize(text))
    if parser.peek().kind == "end":
        raise SegmentQueryError(1, "the query is empty")
    node = parser.expression(0)
    token = parser.peek()
    if token.kind != "end":
        raise SegmentQueryError(
            token.position, f'expected "and", "or" or the end, not {_show(token)}'
        )
    return node


def _show(token: Token) -> str:
    return "the end of the query" if token.kind == "end" else f'"{token.text}"'


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.index = 0

    def peek(self) -> Token:
        return self.tokens[self.index]

    def take(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def is_word(self, word: str) -> bool:
        token = self.peek()
        return token.kind == "word" and token.value == word

    def expect(self, kind: str, text: str, what: str) -> Token:
        token = self.peek()
        if token.kind != kind or token.text != text:
            raise SegmentQueryError(token.position, f"expected {what}, not {_show(token)}")
        return self.take()

    def expression(self, depth: int) -> Node:
        """or-expression := and-expression ("or" and-expression)*"""
        node = self.conjunction(depth)
        while self.is_word("or"):
            self.take()
            node = Or(node, self.conjunction(depth))
        return node

    def conjunction(self, depth: int) -> Node:
        """and-expression := unary ("and" unary)*"""
        node = self.unary(depth)
        while self.is_word("and"):
            self.take()
            node = And(node, self.unary(depth))
        return node

    def unary(self, depth: int) -> Node:
        """unary := "not" unary | "(" expression ")" | comparison"""
        token = self.peek()
        if depth > MAX_DEPTH:
            raise SegmentQueryError(token.position, "the query nests too deeply")
        if self.is_word("not"):
            self.take()
            return Not(self.unary(depth + 1))
        if token.kind == "punct" and token.text == "(":
            self.take()
            node = self.expression(depth + 1)
            self.expect("punct", ")", 'a closing ")"')
            return node
        return self.comparison()

    def comparison(self) -> Comparison:
        token = self.take()
        if token.kind != "word" or token.value not in FIELDS:
            raise SegmentQueryError(
                token.position,
                f"expected a field ({', '.join(FIELDS)}), not {_show(token)}",
            )
        field = str(token.value)
        key = self.attribute_key(token) if field == "attributes" else None
        if field == "bounced" and not self._at_operator():
            return Comparison("bounced", "=", True, position=token.position)
        op_token = self.take()
        op = self._operator(op_token)
        allowed = _FIELD_OPS[field]
        if op not in allowed:
            raise SegmentQueryError(
                op_token.position,
                f"{field} takes {', '.join(allowed)}, not {op}",
            )
        if op == "in":
            value: Value = self.value_list(field, key)
        else:
            value = self.value(field, key, op)
        return Comparison(field, op, value, key=key, position=token.position)

    def _at_operator(self) -> bool:
        token = self.peek()
        return token.kind == "op" or (token.kind == "word" and token.value in ("contains", "in"))

    @staticmethod
    def _operator(token: Token) -> str:
        if token.kind == "op":
            return token.text
        if token.kind == "word" and token.value in ("contains", "in"):
            return str(token.value)
        raise SegmentQueryError(
            token.position,
            f"expected an operator (=, !=, <, <=, >, >=, contains, in), not {_show(token)}",
        )

    def attribute_key(self, field_token: Token) -> str:
        dot = self.peek()
        if dot.kind != "punct" or dot.text != "." or dot.position != field_token.position + 10:
            raise SegmentQueryError(dot.position, 'expected ".KEY" right after "attributes"')
        self.take()
        token = self.take()
        if token.position != dot.position + 1 or token.kind not in ("word", "string", "number"):
            raise SegmentQueryError(
                dot.position + 1, 'expected an attribute key after "attributes."'
            )
        key = token.text if token.kind in ("word", "number") else str(token.value)
        if token.kind == "word":
            # keys written bare may hold dots and hyphens: attributes.plan-2024.tier reads whole
            while (
                self.peek().kind in ("punct", "word", "number")
                and self.peek().text == "."
                and self.tokens[self.index + 1].kind in ("word", "number")
                and self.peek().position == token.position + len(key)
            ):
                self.take()
                key += "." + self.take().text
        if not ATTRIBUTE_KEY.match(key) or key.startswith("_"):
            raise SegmentQueryError(
                token.position,
                "an attribute key has 1 to 100 characters, no quotes or backslashes, "
                'and does not start with "_"',
            )
        return key

    def value_list(self, field: str, key: str | None) -> tuple[Scalar, ...]:
        self.expect("punct", "[", 'a "[" after "in"')
        values: list[Scalar] = []
        while True:
            values.append(self.value(field, key, "="))
            if len(values) > MAX_IN_VALUES:
                raise SegmentQueryError(self.peek().position, f"at most {MAX_IN_VALUES} values")
            token = self.peek()
            if token.kind == "punct" and token.text == ",":
                self.take()
                continue
            self.expect("punct", "]", 'a "," or "]"')
            return tuple(values)

    def value(self, field: str, key: str | None, op: str) -> Scalar:
        token = self.take()
        where = token.position
        if token.kind == "word" and token.value in ("true", "false"):
            flag = token.value == "true"
            if field not in ("bounced", "attributes"):
                raise SegmentQueryError(where, f"{field} is not compared with true or false")
            if op not in ("=", "!="):
                raise SegmentQueryError(where, f"true and false take = or !=, not {op}")
            return flag
        if field == "bounced":
            raise SegmentQueryError(where, f"bounced is true or false, not {_show(token)}")
        if token.kind == "number":
            number = token.value
            assert isinstance(number, int | float)
            if field == "received":
                if not isinstance(number, int) or number < 1:
                    raise SegmentQueryError(where, "received takes an issue id (a whole number)")
                if number > MAX_ISSUE_ID:  # no issue has it, and SQLite binds at most 64 bits
                    raise SegmentQueryError(where, f"no issue has an id above {MAX_ISSUE_ID}")
                return number
            if field != "attributes":
                raise SegmentQueryError(where, f"{field} takes a string in double quotes")
            if op == "contains":
                raise SegmentQueryError(where, "contains takes a string in double quotes")
            if not _finite(number):  # compared as a float: 1e309 and beyond are none
                raise SegmentQueryError(where, "this number is too large to compare with")
            return number
        if token.kind != "string":
            raise SegmentQueryError(where, f"expected a value, not {_show(token)}")
        text = str(token.value)
        if "\x00" in text:
            raise SegmentQueryError(where, "a string may not hold a NUL character")
        if field == "received":
            raise SegmentQueryError(where, "received takes an issue id (a number, no quotes)")
        if field in ("subscribed_at", "confirmed_at"):
            return _date(text, where)
        if field == "status" and text not in STATUSES:
            raise SegmentQueryError(where, f"status is one of {', '.join(STATUSES)}")
        return text


def _finite(number: int | float) -> bool:
    """Whether ``number`` is a finite float (what attributes are compared as)."""
    try:
        return math.isfinite(float(number))
    except OverflowError:  # an int beyond the largest float
        return False


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _date(text: str, where: int) -> date:
    if not _DATE.match(text):
        raise SegmentQueryError(where, 'a date is written "YYYY-MM-DD"')
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise SegmentQueryError(where, f"{text} is not a day of the calendar") from None


# --- back to text -------------------------------------------------------------------------


def format_query(node: Node) -> str:
    """The query text of a tree (``parse(format_query(tree)) == tree`` up to positions)."""
    if isinstance(node, Or):
        return f"{format_query(node.left)} or {format_query(node.right)}"
    if isinstance(node, And):
        return f"{_grouped(node.left, Or)} and {_grouped(node.right, Or)}"
    if isinstance(node, Not):
        return f"not {_grouped(node.operand, Or, And)}"
    field = node.field if node.key is None else f"attributes.{_quote(node.key)}"
    if node.op == "in":
        assert isinstance(node.value, tuple)
        values = ", ".join(_literal(value) for value in node.value)
        return f"{field} in [{values}]"
    assert not isinstance(node.value, tuple)
    return f"{field} {node.op} {_literal(node.value)}"


def _grouped(node: Node, *kinds: type) -> str:
    text = format_query(node)
    return f"({text})" if isinstance(node, kinds) else text


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _literal(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        # the query language has no exponent: 1e+29 is written out (the same float again)
        written = format(Decimal(repr(value)), "f")
        return written if "." in written else f"{written}.0"
    if isinstance(value, int):
        return repr(value)
    if isinstance(value, date):
        return f'"{value.isoformat()}"'
    return _quote(value)
