"""Row filters: the small expression language an agreement uses to say which rows of a dataset a consumer
may see, e.g. ``province_code in ["87", "20"] and status != "EXPELLED"``.

A filter is text typed at a governance desk and kept in an agreement for years, so it is never handed to
``eval``: a hand-written tokenizer and recursive-descent parser turn it into a small immutable AST, and
:meth:`RowFilter.matches` evaluates the AST on Avro data. The text is parsed twice: once for syntax alone (so
a syntax error is reported before any type error), then with every comparison checked against the dataset's
Avro schema as it is built. Grammar, loosest binding first::

    filter     := or_expr END
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" or_expr ")" | comparison
    comparison := FIELD ("==" | "!=" | "<" | "<=" | ">" | ">=") LITERAL
                | FIELD ["not"] "in" "[" LITERAL ("," LITERAL)* "]"
                | FIELD "is" ["not"] "null"
    LITERAL    := "double-quoted string" | integer | "true" | "false" | "null"
    FIELD      := [a-z_][a-z0-9_]*           (keywords are lower-case and reserved)

Strings take the escapes ``\\"`` and ``\\\\`` only. A date field is compared with a "YYYY-MM-DD" string;
``<``, ``<=``, ``>`` and ``>=`` apply to strings, dates and numbers only. Limits: MAX_LENGTH characters,
MAX_DEPTH nested parentheses and ``not``s, MAX_IN_ITEMS values in an ``in`` list.
A comparison on a null or absent field value is false, except ``is null``, ``== null`` and an ``in`` list
holding ``null``; ``not`` simply negates. Errors are :class:`~sharehub.errors.RowFilterError` and give the
1-based column (counted from the start of the text) and an excerpt.
"""

from __future__ import annotations

import datetime as dt
import difflib
import operator
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol, TypeAlias, cast

from fastavro.schema import expand_schema

from sharehub.avro import RecordSchema
from sharehub.errors import RowFilterError

MAX_LENGTH = 2_000
MAX_DEPTH = 32
MAX_IN_ITEMS = 1_000

Value: TypeAlias = str | int | bool | dt.date | None

KEYWORDS = frozenset({"and", "or", "not", "in", "is", "null", "true", "false"})
COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
ORDERING = frozenset({"<", "<=", ">", ">="})


# --- the AST -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """``field op value``; ``value`` is already typed (a date field holds a :class:`datetime.date`)."""

    field: str
    op: str
    value: Value

    def __post_init__(self) -> None:
        if self.op not in COMPARISONS:
            raise ValueError(f"unknown comparison operator {self.op!r}")

    def matches(self, record: Mapping[str, Any]) -> bool:
        actual = record.get(self.field)
        if self.value is None:
            return (actual is None) == (self.op == "==")
        if actual is None:
            return False
        try:
            return bool(COMPARISONS[self.op](actual, self.value))
        except TypeError:  # a value of another type than the schema promised: no match
            return False

    def fields(self) -> frozenset[str]:
        return frozenset({self.field})

    def __str__(self) -> str:
        return f"{self.field} {self.op} {render_value(self.value)}"


@dataclass(frozen=True)
class InList:
    """``field in [values]``, or ``field not in [values]`` when ``negated``."""

    field: str
    values: tuple[Value, ...]
    negated: bool = False

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("an 'in' list needs at least one value")

    def matches(self, record: Mapping[str, Any]) -> bool:
        actual = record.get(self.field)
        if actual is None:
            return not self.negated and None in self.values
        return (actual in self.values) != self.negated

    def fields(self) -> frozenset[str]:
        return frozenset({self.field})

    def __str__(self) -> str:
        keyword = "not in" if self.negated else "in"
        return f"{self.field} {keyword} [{', '.join(render_value(v) for v in self.values)}]"


@dataclass(frozen=True)
class IsNull:
    """``field is null``, or ``field is not null`` when ``negated``."""

    field: str
    negated: bool = False

    def matches(self, record: Mapping[str, Any]) -> bool:
        return (record.get(self.field) is None) != self.negated

    def fields(self) -> frozenset[str]:
        return frozenset({self.field})

    def __str__(self) -> str:
        return f"{self.field} is {'not ' if self.negated else ''}null"


@dataclass(frozen=True)
class Not:
    operand: Expr

    def matches(self, record: Mapping[str, Any]) -> bool:
        return not self.operand.matches(record)

    def fields(self) -> frozenset[str]:
        return self.operand.fields()

    def __str__(self) -> str:
        return f"not {_wrap(self.operand, (And, Or))}"


@dataclass(frozen=True)
class And:
    operands: tuple[Expr, ...]

    def __post_init__(self) -> None:
        _need_two(self.operands, "and")

    def matches(self, record: Mapping[str, Any]) -> bool:
        return all(operand.matches(record) for operand in self.operands)

    def fields(self) -> frozenset[str]:
        return frozenset[str]().union(*(operand.fields() for operand in self.operands))

    def __str__(self) -> str:
        return " and ".join(_wrap(operand, (And, Or)) for operand in self.operands)


@dataclass(frozen=True)
class Or:
    operands: tuple[Expr, ...]

    def __post_init__(self) -> None:
        _need_two(self.operands, "or")

    def matches(self, record: Mapping[str, Any]) -> bool:
        return any(operand.matches(record) for operand in self.operands)

    def fields(self) -> frozenset[str]:
        return frozenset[str]().union(*(operand.fields() for operand in self.operands))

    def __str__(self) -> str:
        return " or ".join(_wrap(operand, (Or,)) for operand in self.operands)


Expr: TypeAlias = Comparison | InList | IsNull | Not | And | Or


def _need_two(operands: tuple[Expr, ...], keyword: str) -> None:
    if len(operands) < 2:
        raise ValueError(f"'{keyword}' needs at least two operands")


def _wrap(expr: Expr, kinds: tuple[type, ...]) -> str:
    """``expr`` as text, in parentheses when it is one of ``kinds`` (so it re-parses to the same tree)."""
    return f"({expr})" if isinstance(expr, kinds) else str(expr)


def render_value(value: Value) -> str:
    """A literal as filter text: the inverse of the tokenizer."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dt.date):
        return f'"{value.isoformat()}"'
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class RowFilter:
    """A compiled row filter. Build it with :func:`compile_filter`; ``str()`` gives its canonical text."""

    expr: Expr

    def matches(self, record: Mapping[str, Any]) -> bool:
        """Whether an Avro datum of the dataset passes the filter."""
        return self.expr.matches(record)

    @property
    def fields(self) -> frozenset[str]:
        """The fields the filter reads."""
        return self.expr.fields()

    def __str__(self) -> str:
        return str(self.expr)

    def masked(self, fields: Collection[str]) -> str:
        """The canonical text with every literal compared with one of ``fields`` shown as
        :data:`MASKED` (what may be logged of a filter over personal fields)."""
        return str(_masked(self.expr, frozenset(fields)))


#: What a masked literal reads as.
MASKED = "<masked>"


def _masked(expr: Expr, fields: frozenset[str]) -> Expr:
    if isinstance(expr, Comparison):
        hidden = expr.field in fields and expr.value is not None
        return Comparison(expr.field, expr.op, MASKED) if hidden else expr
    if isinstance(expr, InList):
        if expr.field not in fields:
            return expr
        return InList(expr.field, tuple(None if v is None else MASKED for v in expr.values), expr.negated)
    if isinstance(expr, IsNull):
        return expr
    if isinstance(expr, Not):
        return Not(_masked(expr.operand, fields))
    if isinstance(expr, And):
        return And(tuple(_masked(o, fields) for o in expr.operands))
    return Or(tuple(_masked(o, fields) for o in expr.operands))


def compile_filter(
    text: str, schema: RecordSchema, *, allowed_fields: Collection[str] | None = None
) -> RowFilter:
    """Parse ``text`` and check it against ``schema`` (and ``allowed_fields``, if given); RowFilterError
    says what is wrong and where."""
    if len(text) > MAX_LENGTH:
        raise RowFilterError(
            f"column {MAX_LENGTH + 1}: the filter is {len(text):,} characters long; at most {MAX_LENGTH:,} "
            "are allowed"
        )
    _Parser(text, _Untyped()).parse()  # syntax errors first, wherever they are
    return RowFilter(_Parser(text, _Typer(schema, allowed_fields)).parse())


# --- tokens --------------------------------------------------------------------------------------------

_WHITESPACE = " \t\r\n"
_PUNCTUATION = ("==", "!=", "<=", ">=", "<", ">", "(", ")", "[", "]", ",")
_FIELD_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_WORD = re.compile(r"[A-Za-z0-9_]+")
_INTEGER = re.compile(r"-?[0-9]+")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class _Token:
    kind: str  # "field", "keyword", "string", "integer", "symbol" or "end"
    text: str  # as written in the filter
    column: int
    value: Value = None

    def describe(self) -> str:
        if self.kind == "end":
            return "the end of the filter"
        shown = self.text if len(self.text) <= 24 else self.text[:21] + "..."
        return shown if self.kind in ("string", "integer") else f"'{shown}'"


def _fail(text: str, index: int, problem: str) -> NoReturn:
    raise RowFilterError(f"column {index + 1}: {problem} (near {_excerpt(text, index)})")


def _excerpt(text: str, index: int) -> str:
    piece = text[index : index + 20]
    return repr(piece + "..." if len(text) > index + 20 else piece) if piece else "the end of the filter"


def _tokenize(text: str) -> Iterator[_Token]:
    """The tokens of ``text``, lazily, so the first error by position is the one reported."""
    i = 0
    while True:
        while i < len(text) and text[i] in _WHITESPACE:
            i += 1
        if i == len(text):
            yield _Token("end", "", i + 1)
            return
        token = _next_token(text, i)
        yield token
        i += len(token.text)


def _next_token(text: str, i: int) -> _Token:
    ch = text[i]
    if ch == '"':
        return _string(text, i)
    if ch in "0123456789-":
        return _integer(text, i)
    if ch.isascii() and (ch.isalpha() or ch == "_"):
        return _word(text, i)
    for symbol in _PUNCTUATION:
        if text.startswith(symbol, i):
            return _Token("symbol", symbol, i + 1)
    hint = {"=": "; did you mean '=='?", "!": "; did you mean '!='?"}.get(ch, "")
    _fail(text, i, f"unexpected character {ch!r}{hint}")


def _string(text: str, start: int) -> _Token:
    chars: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == '"':
            return _Token("string", text[start : i + 1], start + 1, "".join(chars))
        if ch == "\\":
            escaped = text[i + 1 : i + 2]
            if escaped not in ('"', "\\"):
                _fail(text, i, f"unknown escape '\\{escaped}' in a string; only \\\" and \\\\ are allowed")
            chars.append(escaped)
            i += 2
        else:
            chars.append(ch)
            i += 1
    _fail(text, start, "this string is never closed (missing '\"')")


def _integer(text: str, start: int) -> _Token:
    match = _INTEGER.match(text, start)
    if match is None:
        _fail(text, start, "'-' must be followed by the digits of an integer")
    return _Token("integer", match.group(), start + 1, int(match.group()))


def _word(text: str, start: int) -> _Token:
    match = _WORD.match(text, start)
    assert match is not None  # text[start] is a letter or '_'
    word = match.group()
    if word in KEYWORDS:
        return _Token("keyword", word, start + 1)
    if word.lower() in KEYWORDS:
        _fail(text, start, f"keywords are lower-case: write '{word.lower()}', not '{word}'")
    if not _FIELD_NAME.fullmatch(word):
        _fail(text, start, f"'{word}' is not a field name (lower-case letters, digits and '_')")
    return _Token("field", word, start + 1)


# --- the parser ----------------------------------------------------------------------------------------


class _Parser:
    """Recursive descent over the grammar in the module docstring, one token of lookahead."""

    def __init__(self, text: str, builder: _Builder) -> None:
        self._builder = builder
        self._tokens = _tokenize(text)
        self._current = next(self._tokens)
        self._previous: _Token | None = None
        self._depth = 0

    def parse(self) -> Expr:
        expr = self._or()
        if self._current.kind != "end":
            self._expected("'and', 'or' or the end of the filter")
        return expr

    # grammar rules

    def _or(self) -> Expr:
        operands = [self._and()]
        while self._at("keyword", "or"):
            self._advance()
            operands.append(self._and())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def _and(self) -> Expr:
        operands = [self._not()]
        while self._at("keyword", "and"):
            self._advance()
            operands.append(self._not())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def _not(self) -> Expr:
        if self._at("keyword", "not"):
            with self._nested(self._advance()):
                return Not(self._not())
        if self._at("symbol", "("):
            with self._nested(self._advance()):
                expr = self._or()
            self._expect("symbol", ")", "')'")
            return expr
        if self._current.kind != "field":
            self._expected("a field name, 'not' or '('")
        return self._comparison(self._advance())

    def _comparison(self, field: _Token) -> Expr:
        token = self._current
        if token.kind == "symbol" and token.text in COMPARISONS:
            self._advance()
            literal = self._literal()
            return self._builder.comparison(field, token, literal)
        if self._at("keyword", "in"):
            self._advance()
            return self._builder.in_list(field, self._list(), negated=False)
        if self._at("keyword", "not"):
            self._advance()
            self._expect("keyword", "in", "'in'")
            return self._builder.in_list(field, self._list(), negated=True)
        if self._at("keyword", "is"):
            self._advance()
            negated = self._at("keyword", "not")
            if negated:
                self._advance()
            self._expect("keyword", "null", "'null'")
            return self._builder.is_null(field, negated)
        self._expected("an operator (==, !=, <, <=, >, >=, in, not in or is)")

    def _list(self) -> list[_Token]:
        self._expect("symbol", "[", "'['")
        items = [self._literal()]
        while not self._at("symbol", "]"):
            self._expect("symbol", ",", "']' or ','")
            if len(items) == MAX_IN_ITEMS:
                raise RowFilterError(
                    f"column {self._current.column}: an 'in' list may hold at most {MAX_IN_ITEMS:,} values"
                )
            items.append(self._literal())
        self._advance()
        return items

    def _literal(self) -> _Token:
        token = self._current
        if token.kind in ("string", "integer") or (token.kind == "keyword" and token.text in _LITERAL_WORDS):
            return self._advance()
        self._expected('a value ("string", integer, true, false or null)')

    # token handling

    def _at(self, kind: str, text: str) -> bool:
        return self._current.kind == kind and self._current.text == text

    def _advance(self) -> _Token:
        token = self._current
        self._previous = token
        if token.kind != "end":
            self._current = next(self._tokens)
        return token

    def _expect(self, kind: str, text: str, what: str) -> None:
        if not self._at(kind, text):
            self._expected(what)
        self._advance()

    def _expected(self, what: str) -> NoReturn:
        after = f" after {self._previous.describe()}" if self._previous else ""
        raise RowFilterError(
            f"column {self._current.column}: expected {what}{after}, found {self._current.describe()}"
        )

    @contextmanager
    def _nested(self, opening: _Token) -> Iterator[None]:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise RowFilterError(
                f"column {opening.column}: {opening.describe()} nests deeper than {MAX_DEPTH} levels"
            )
        yield
        self._depth -= 1


_LITERAL_WORDS = frozenset({"true", "false", "null"})


# --- types ---------------------------------------------------------------------------------------------

_INT_BOUNDS = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


@dataclass(frozen=True)
class _Branch:
    """One non-null Avro type a field can hold, as far as row filters care."""

    kind: str  # "string", "enum", "integer", "number", "boolean", "date" or "other"
    label: str  # for messages: "a string", "an enum of A, B"
    symbols: tuple[str, ...] = ()
    bounds: tuple[int, int] | None = None

    @property
    def orderable(self) -> bool:
        return self.kind in ("string", "integer", "number", "date")


@dataclass(frozen=True)
class _FieldType:
    name: str
    nullable: bool
    branches: tuple[_Branch, ...]

    @property
    def label(self) -> str:
        return " or ".join(branch.label for branch in self.branches) or "always null"


def _field_type(name: str, avro_type: Any) -> _FieldType:
    options = avro_type if isinstance(avro_type, list) else [avro_type]
    nullable = any(_type_name(option) == "null" for option in options)
    branches = tuple(_branch(option) for option in options if _type_name(option) != "null")
    return _FieldType(name, nullable, branches)


def _type_name(avro_type: Any) -> str:
    return str(avro_type["type"] if isinstance(avro_type, dict) else avro_type)


def _branch(avro_type: Any) -> _Branch:
    kind = _type_name(avro_type)
    logical = avro_type.get("logicalType") if isinstance(avro_type, dict) else None
    if kind == "int" and logical == "date":
        return _Branch("date", "a date")
    if kind == "string":
        return _Branch("string", "a string")
    if kind == "enum":
        symbols = tuple(avro_type["symbols"])
        return _Branch("enum", f"an enum of {', '.join(symbols)}", symbols=symbols)
    if logical is None and kind in _INT_BOUNDS:
        return _Branch("integer", f"an integer ({kind})", bounds=_INT_BOUNDS[kind])
    if logical is None and kind in ("float", "double"):
        return _Branch("number", f"a number ({kind})")
    if kind == "boolean":
        return _Branch("boolean", "a boolean")
    return _Branch("other", f"{kind} ({logical})" if logical else kind)


class _Builder(Protocol):
    """Builds a comparison node from its tokens: :class:`_Untyped` for the syntax pass, :class:`_Typer`
    for the typed one."""

    def comparison(self, field: _Token, op: _Token, literal: _Token) -> Comparison: ...

    def in_list(self, field: _Token, items: list[_Token], *, negated: bool) -> InList: ...

    def is_null(self, field: _Token, negated: bool) -> IsNull: ...


class _Untyped:
    """Nodes straight from the tokens, unchecked: the syntax pass."""

    def comparison(self, field: _Token, op: _Token, literal: _Token) -> Comparison:
        return Comparison(field.text, op.text, literal.value)

    def in_list(self, field: _Token, items: list[_Token], *, negated: bool) -> InList:
        return InList(field.text, tuple(item.value for item in items), negated)

    def is_null(self, field: _Token, negated: bool) -> IsNull:
        return IsNull(field.text, negated)


class _Mismatch(Exception):
    """A literal that does not fit one branch of a field's type; the message says why."""


class _Typer:
    """Checks each comparison against the schema as the parser builds it, and types its literals."""

    def __init__(self, schema: RecordSchema, allowed_fields: Collection[str] | None) -> None:
        expanded = cast(dict[str, Any], expand_schema(schema.raw))
        self._schema_name = schema.name
        self._types = {f["name"]: _field_type(f["name"], f["type"]) for f in expanded["fields"]}
        self._allowed = None if allowed_fields is None else frozenset(allowed_fields)

    def comparison(self, field: _Token, op: _Token, literal: _Token) -> Comparison:
        ftype = self._field(field)
        if op.text in ORDERING and not any(branch.orderable for branch in ftype.branches):
            raise RowFilterError(
                f"column {op.column}: '{op.text}' compares only numbers, dates and strings; "
                f"field '{ftype.name}' is {ftype.label}"
            )
        if literal.text == "null" and op.text in ORDERING:
            raise RowFilterError(
                f"column {literal.column}: null can only be compared with == or != (or use 'is null')"
            )
        return Comparison(ftype.name, op.text, self._value(ftype, literal, ordered=op.text in ORDERING))

    def in_list(self, field: _Token, items: list[_Token], *, negated: bool) -> InList:
        ftype = self._field(field)
        return InList(ftype.name, tuple(self._value(ftype, item, ordered=False) for item in items), negated)

    def is_null(self, field: _Token, negated: bool) -> IsNull:
        ftype = self._field(field)
        if not ftype.nullable:
            raise RowFilterError(
                f"column {field.column}: field '{ftype.name}' is never null (its type has no null branch)"
            )
        return IsNull(ftype.name, negated)

    def _field(self, token: _Token) -> _FieldType:
        name = token.text
        if name not in self._types:
            known = sorted(self._types if self._allowed is None else self._allowed & self._types.keys())
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"{self._schema_name} has {', '.join(known)}"
            raise RowFilterError(f"column {token.column}: unknown field '{name}' ({hint})")
        if self._allowed is not None and name not in self._allowed:
            allowed = ", ".join(sorted(self._allowed)) or "none"
            raise RowFilterError(
                f"column {token.column}: field '{name}' may not be used in this filter (allowed: {allowed})"
            )
        return self._types[name]

    def _value(self, ftype: _FieldType, literal: _Token, *, ordered: bool) -> Value:
        if literal.text == "null" and literal.kind == "keyword":
            if not ftype.nullable:
                raise RowFilterError(
                    f"column {literal.column}: field '{ftype.name}' is never null, so it cannot equal null"
                )
            return None
        reasons = []
        for branch in ftype.branches:
            if ordered and not branch.orderable:
                continue
            try:
                return _convert(branch, literal)
            except _Mismatch as exc:
                reasons.append(str(exc))
        reason = reasons[0] if len(reasons) == 1 else f"{literal.describe()} fits none of its types"
        raise RowFilterError(f"column {literal.column}: field '{ftype.name}' is {ftype.label}; {reason}")


def _convert(branch: _Branch, literal: _Token) -> Value:
    """The literal's value for one branch of a field's type, or _Mismatch."""
    shown = literal.describe()
    if branch.kind == "string":
        return _string_value(literal, f"{shown} is not a string")
    if branch.kind == "enum":
        symbol = _string_value(literal, f"write one of its symbols in double quotes, not {shown}")
        if symbol not in branch.symbols:
            raise _Mismatch(f"'{symbol}' is not one of them")
        return symbol
    if branch.kind in ("integer", "number"):
        number = _integer_value(literal, f"{shown} is not an integer")
        low, high = branch.bounds or (number, number)
        if not low <= number <= high:
            raise _Mismatch(f"{shown} is outside {low}..{high}")
        return number
    if branch.kind == "boolean":
        if literal.text not in ("true", "false") or literal.kind != "keyword":
            raise _Mismatch(f"write true or false, not {shown}")
        return literal.text == "true"
    if branch.kind == "date":
        return _date(_string_value(literal, f'write it as "YYYY-MM-DD", not {shown}'), shown)
    raise _Mismatch("row filters compare only strings, enums, integers, booleans and dates")


def _string_value(literal: _Token, problem: str) -> str:
    if not isinstance(literal.value, str) or literal.kind != "string":
        raise _Mismatch(problem)
    return literal.value


def _integer_value(literal: _Token, problem: str) -> int:
    if not isinstance(literal.value, int) or literal.kind != "integer":
        raise _Mismatch(problem)
    return literal.value


def _date(text: str, shown: str) -> dt.date:
    try:
        if _ISO_DATE.fullmatch(text):
            return dt.date.fromisoformat(text)
    except ValueError:
        pass
    raise _Mismatch(f"{shown} is not a valid date YYYY-MM-DD")
