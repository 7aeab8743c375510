"""Row filters: the language on the party-members schema, every error with its column, the limits, that
no filter can run code, and hypothesis properties (canonical text round trip, agreement with a reference
evaluator written here over the AST)."""

from __future__ import annotations

import builtins
import contextlib
import datetime as dt
import inspect
import re
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from sharehub import row_filter
from sharehub.avro import RecordSchema, load_schema, record_from_json
from sharehub.errors import InputError, RowFilterError
from sharehub.row_filter import (
    MAX_DEPTH,
    MAX_IN_ITEMS,
    MAX_LENGTH,
    And,
    Comparison,
    Expr,
    InList,
    IsNull,
    Not,
    Or,
    RowFilter,
    Value,
    compile_filter,
)
from tests.unit.test_avro import member as json_member

PARTY_MEMBERS = load_schema("party-members")
EXAMPLE = 'province_code in ["87", "20"] and status != "EXPELLED"'


def compile_(text: str, **kwargs: Any) -> RowFilter:
    return compile_filter(text, PARTY_MEMBERS, **kwargs)


def member(**overrides: Any) -> dict[str, Any]:
    """An Avro datum of party-members (dates are datetime.date), with JSON-style overrides."""
    return record_from_json(PARTY_MEMBERS, json_member(**{"province_code": "87", **overrides}))


def error_of(text: str, **kwargs: Any) -> str:
    with pytest.raises(RowFilterError) as caught:
        compile_(text, **kwargs)
    return str(caught.value)


# --- the language --------------------------------------------------------------------------------------


def test_the_agreement_example() -> None:
    f = compile_(EXAMPLE)
    assert f.expr == And(
        (InList("province_code", ("87", "20")), Comparison("status", "!=", "EXPELLED")),
    )
    assert f.fields == {"province_code", "status"}
    assert str(f) == EXAMPLE
    assert f.matches(member(province_code="87"))
    assert f.matches(member(province_code="20", status="PROBATIONARY"))
    assert not f.matches(member(province_code="87", status="EXPELLED"))
    assert not f.matches(member(province_code="01"))


def test_and_binds_tighter_than_or() -> None:
    f = compile_('status == "OFFICIAL" or gender == "MALE" and province_code == "01"')
    assert f.expr == Or(
        (
            Comparison("status", "==", "OFFICIAL"),
            And((Comparison("gender", "==", "MALE"), Comparison("province_code", "==", "01"))),
        )
    )
    # (a or b) and c would refuse this official member from province 87; a or (b and c) lets it through.
    assert f.matches(member(status="OFFICIAL", gender="FEMALE", province_code="87"))
    assert not f.matches(member(status="PROBATIONARY", gender="MALE", province_code="87"))
    assert f.matches(member(status="PROBATIONARY", gender="MALE", province_code="01"))


def test_not_binds_looser_than_a_comparison_and_tighter_than_and() -> None:
    f = compile_('not status == "EXPELLED" and gender == "MALE"')
    assert f.expr == And((Not(Comparison("status", "==", "EXPELLED")), Comparison("gender", "==", "MALE")))
    assert f.matches(member(gender="MALE"))
    assert not f.matches(member(gender="MALE", status="EXPELLED"))
    assert compile_("not not phone is null").expr == Not(Not(IsNull("phone")))


def test_parentheses_group_and_survive_the_canonical_text() -> None:
    f = compile_('(status == "OFFICIAL" or gender == "MALE") and province_code == "01"')
    assert isinstance(f.expr, And) and isinstance(f.expr.operands[0], Or)
    assert not f.matches(member(status="OFFICIAL", province_code="87"))
    assert f.matches(member(status="OFFICIAL", province_code="01"))
    assert str(f) == '(status == "OFFICIAL" or gender == "MALE") and province_code == "01"'
    assert (
        str(compile_('not (phone is null or gender == "MALE")')) == 'not (phone is null or gender == "MALE")'
    )
    # Redundant parentheses go; grouping that changes the tree stays.
    assert str(compile_('((status == "OFFICIAL"))')) == 'status == "OFFICIAL"'
    nested = compile_('member_id == "a" and (member_id == "b" and member_id == "c")')
    assert str(nested) == 'member_id == "a" and (member_id == "b" and member_id == "c")'


def test_in_and_not_in() -> None:
    f = compile_('status not in ["EXPELLED", "DECEASED"] and commune_code in ["28315"]')
    assert f.matches(member())
    assert not f.matches(member(status="DECEASED"))
    assert not f.matches(member(commune_code="00001"))
    assert str(compile_('status   not  in["EXPELLED"]')) == 'status not in ["EXPELLED"]'


def test_is_null_and_comparisons_with_null() -> None:
    no_phone, phone = member(phone=None, official_date=None), member()
    assert compile_("phone is null").matches(no_phone) and not compile_("phone is null").matches(phone)
    assert compile_("phone is not null").matches(phone) and not compile_("phone is not null").matches(
        no_phone
    )
    assert compile_("phone == null").matches(no_phone) and not compile_("phone == null").matches(phone)
    assert compile_("phone != null").matches(phone) and not compile_("phone != null").matches(no_phone)
    assert compile_('phone in ["0912345678", null]').matches(no_phone)
    # Every other comparison with a null value is false; not simply negates.
    for text in ('phone == "x"', 'phone != "x"', 'phone < "x"', 'phone in ["x"]', 'phone not in ["x"]'):
        assert not compile_(text).matches(no_phone), text
    assert compile_('not phone == "x"').matches(no_phone)
    assert not compile_('official_date > "2000-01-01"').matches(no_phone)


def test_dates_are_compared_as_dates() -> None:
    f = compile_('admission_date >= "2005-01-01" and admission_date < "2006-01-01"')
    assert f.expr == And(
        (
            Comparison("admission_date", ">=", dt.date(2005, 1, 1)),
            Comparison("admission_date", "<", dt.date(2006, 1, 1)),
        )
    )
    assert f.matches(member(admission_date="2005-05-19"))
    assert not f.matches(member(admission_date="2006-05-19"))
    assert compile_('date_of_birth in ["1980-02-29"]').matches(member())
    assert compile_('official_date == "2006-05-19"').matches(member())


def test_strings_take_two_escapes_and_any_other_character() -> None:
    f = compile_(r'full_name == "say \"xin chào\" \\ Nguyễn"')
    assert f.expr == Comparison("full_name", "==", 'say "xin chào" \\ Nguyễn')
    assert str(f) == r'full_name == "say \"xin chào\" \\ Nguyễn"'
    assert compile_('full_name == "Nguyễn Thị Lan"').matches(member())


def test_canonical_text_normalises_layout() -> None:
    f = compile_('\n  status!="EXPELLED"\tand(phone is  not null or\r\nmember_id<"PM5")  ')
    assert str(f) == 'status != "EXPELLED" and (phone is not null or member_id < "PM5")'
    assert compile_(str(f)) == f


def test_allowed_fields() -> None:
    f = compile_('status == "OFFICIAL"', allowed_fields={"status", "province_code"})
    assert f.fields == {"status"}


def test_missing_or_mistyped_record_values_never_match() -> None:
    assert not compile_('member_id < "PM5"').matches({"member_id": 42})
    assert not compile_('member_id == "PM5"').matches({})
    assert compile_("phone is null").matches({})


def test_nodes_refuse_to_be_built_malformed() -> None:
    with pytest.raises(ValueError):
        And((IsNull("phone"),))
    with pytest.raises(ValueError):
        InList("status", ())
    with pytest.raises(ValueError):
        Comparison("status", "=~", "x")


COUNTS = RecordSchema.from_json(
    "counts",
    {
        "type": "record",
        "name": "Counts",
        "fields": [
            {"name": "count", "type": "int"},
            {"name": "total", "type": ["null", "long"], "default": None},
            {"name": "ratio", "type": "double"},
            {"name": "active", "type": "boolean"},
            {"name": "stamp", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "tags", "type": ["null", {"type": "array", "items": "string"}], "default": None},
        ],
    },
)


def test_integers_numbers_and_booleans() -> None:
    f = compile_filter("count >= -5 and ratio > 1 and active == true and total < 9223372036854775807", COUNTS)
    assert f.matches({"count": -5, "ratio": 1.5, "active": True, "total": 7})
    assert not f.matches({"count": -5, "ratio": 1.5, "active": False, "total": 7})
    assert compile_filter("active != false and tags is null", COUNTS).matches({"active": True, "tags": None})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("count == 2147483648", "column 10: field 'count' is an integer (int); 2147483648 is outside"),
        ('count == "3"', "column 10: field 'count' is an integer (int); \"3\" is not an integer"),
        ('active == "yes"', "column 11: field 'active' is a boolean; write true or false, not \"yes\""),
        (
            "active < true",
            "column 8: '<' compares only numbers, dates and strings; field 'active' is a boolean",
        ),
        ("stamp == 1", "column 10: field 'stamp' is long (timestamp-millis); row filters compare only"),
        ("tags == null", ""),
        ("tags == 1", "column 9: field 'tags' is array; row filters compare only"),
    ],
)
def test_types_beyond_party_members(text: str, message: str) -> None:
    if not message:
        compile_filter(text, COUNTS)
        return
    with pytest.raises(RowFilterError) as caught:
        compile_filter(text, COUNTS)
    assert str(caught.value).startswith(message)


# --- errors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # syntax
        ('province_code in ["87" "20"]', """column 24: expected ']' or ',' after "87", found "20\""""),
        (
            'province_code in ["87",]',
            """column 24: expected a value ("string", integer, true, false or null)""",
        ),
        ("status in []", "column 12: expected a value"),
        ("", "column 1: expected a field name, 'not' or '(', found the end of the filter"),
        ("status ==", "column 10: expected a value (\"string\", integer, true, false or null) after '=='"),
        (
            'status == "OFFICIAL" and',
            "column 25: expected a field name, 'not' or '(' after 'and', found the end",
        ),
        (
            '(status == "OFFICIAL"',
            """column 22: expected ')' after "OFFICIAL", found the end of the filter""",
        ),
        (
            'status == "OFFICIAL")',
            "column 21: expected 'and', 'or' or the end of the filter after \"OFFICIAL\"",
        ),
        ('status == "OFFICIAL" gender == "MALE"', "column 22: expected 'and', 'or' or the end of the filter"),
        ('status not "OFFICIAL"', """column 12: expected 'in' after 'not', found "OFFICIAL\""""),
        ('phone is not "x"', """column 14: expected 'null' after 'not', found "x\""""),
        (
            'status "OFFICIAL"',
            "column 8: expected an operator (==, !=, <, <=, >, >=, in, not in or is) after",
        ),
        # tokens
        (
            'status = "OFFICIAL"',
            "column 8: unexpected character '='; did you mean '=='? (near '= \"OFFICIAL\"')",
        ),
        ('status ! "OFFICIAL"', "column 8: unexpected character '!'; did you mean '!='?"),
        ('status == "OFFICIAL', "column 11: this string is never closed (missing '\"') (near '\"OFFICIAL')"),
        (r'full_name == "a\nb"', r"column 16: unknown escape '\n' in a string; only \" and \\ are allowed"),
        ("member_id == - 1", "column 14: '-' must be followed by the digits of an integer"),
        (
            'gender == "MALE" AND status == "OFFICIAL"',
            "column 18: keywords are lower-case: write 'and', not 'AND'",
        ),
        (
            'Status == "OFFICIAL"',
            "column 1: 'Status' is not a field name (lower-case letters, digits and '_')",
        ),
        ('tỉnh == "87"', "column 2: unexpected character 'ỉ'"),
        # fields
        ('provnce_code == "87"', "column 1: unknown field 'provnce_code' (did you mean 'province_code'?)"),
        ('xyz == "1"', "column 1: unknown field 'xyz' (party-members has admission_date, commune_code,"),
        (
            'status == "ACTIVE"',
            "column 11: field 'status' is an enum of PROBATIONARY, OFFICIAL, TRANSFERRED_OUT, DECEASED, "
            "EXPELLED; 'ACTIVE' is not one of them",
        ),
        ("status == 1", "column 11: field 'status' is an enum of PROBATIONARY, OFFICIAL, TRANSFERRED_OUT"),
        ("province_code == 87", "column 18: field 'province_code' is a string; 87 is not a string"),
        (
            'gender in ["MALE", "female"]',
            "column 20: field 'gender' is an enum of MALE, FEMALE; 'female' is not",
        ),
        (
            'admission_date < "2020-02-30"',
            "column 18: field 'admission_date' is a date; \"2020-02-30\" is not a valid date YYYY-MM-DD",
        ),
        (
            'admission_date < "20200101"',
            "column 18: field 'admission_date' is a date; \"20200101\" is not a valid",
        ),
        (
            "admission_date < 20200101",
            "column 18: field 'admission_date' is a date; write it as \"YYYY-MM-DD\"",
        ),
        (
            'status < "OFFICIAL"',
            "column 8: '<' compares only numbers, dates and strings; field 'status' is an enum",
        ),
        ("status is null", "column 1: field 'status' is never null (its type has no null branch)"),
        ("status == null", "column 11: field 'status' is never null, so it cannot equal null"),
        ("phone > null", "column 9: null can only be compared with == or != (or use 'is null')"),
    ],
)
def test_errors_say_what_and_where(text: str, message: str) -> None:
    assert error_of(text).startswith(message)


def test_a_field_outside_the_agreement_is_refused() -> None:
    message = error_of('status == "OFFICIAL" or national_id == "1"', allowed_fields=["status", "gender"])
    assert (
        message == "column 25: field 'national_id' may not be used in this filter (allowed: gender, status)"
    )
    message = error_of('stauts == "OFFICIAL"', allowed_fields=["status", "gender"])
    assert message == "column 1: unknown field 'stauts' (did you mean 'status'?)"


def test_row_filter_error_is_an_input_error() -> None:
    assert issubclass(RowFilterError, InputError)


def test_syntax_errors_are_reported_before_type_errors() -> None:
    message = error_of('status == "ACTIVE" or 1; import os')
    assert message.startswith("column 23: expected a field name, 'not' or '(' after 'or', found 1")


# --- no code execution ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '__import__("os")',
            "column 11: expected an operator (==, !=, <, <=, >, >=, in, not in or is) after",
        ),
        (
            'member_id == "x" or 1; import os',
            "column 21: expected a field name, 'not' or '(' after 'or', found 1",
        ),
        ('member_id == "x"; import os', "column 17: unexpected character ';'"),
        ("member_id == open('/etc/passwd').read()", "column 14: expected a value"),
        ('member_id == "x" or __class__.__bases__', "column 30: unexpected character '.'"),
        ("lambda: 1", "column 7: unexpected character ':'"),
        ('member_id == f"{1}"', "column 14: expected a value"),
    ],
)
def test_code_is_a_syntax_error(text: str, message: str) -> None:
    assert error_of(text).startswith(message)


def test_code_inside_a_string_is_just_a_string(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("row filters must never evaluate code")

    for name in ("eval", "exec", "compile", "__import__"):
        monkeypatch.setattr(builtins, name, refuse)
    f = compile_('full_name == "__import__(\\"os\\").system(\\"id\\")" or member_id == "PM0000000001"')
    assert f.matches(member()) and not f.matches(member(member_id="x"))


def test_the_module_never_calls_eval_exec_or_compile() -> None:
    source = inspect.getsource(row_filter)
    assert not re.search(r"(?<![\w.])(eval|exec|compile|literal_eval|__import__)\s*\(", source)
    assert "import ast" not in source


# --- limits --------------------------------------------------------------------------------------------


def test_text_length_limit() -> None:
    prefix = 'member_id == "'
    longest = prefix + "x" * (MAX_LENGTH - len(prefix) - 1) + '"'
    assert len(longest) == MAX_LENGTH
    compile_(longest)
    too_long = longest + " "
    assert error_of(too_long) == "column 2001: the filter is 2,001 characters long; at most 2,000 are allowed"


def test_nesting_depth_limit() -> None:
    leaf = 'status == "OFFICIAL"'
    compile_("(" * MAX_DEPTH + leaf + ")" * MAX_DEPTH)
    compile_("not " * MAX_DEPTH + leaf)
    compile_("not (" * (MAX_DEPTH // 2) + leaf + ")" * (MAX_DEPTH // 2))
    assert error_of("(" * (MAX_DEPTH + 1) + leaf + ")" * (MAX_DEPTH + 1)) == (
        "column 33: '(' nests deeper than 32 levels"
    )
    assert error_of("not " * (MAX_DEPTH + 1) + leaf) == "column 129: 'not' nests deeper than 32 levels"
    # Deep input fails fast and cleanly, never with a RecursionError.
    assert error_of("(" * 1500).startswith("column 33: '(' nests deeper")


def test_in_list_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    # With 2,000 characters at most, a list cannot reach 1,000 items; the limit still holds if that grows.
    monkeypatch.setattr(row_filter, "MAX_LENGTH", 100_000)
    items = [f'"{i}"' for i in range(MAX_IN_ITEMS + 1)]
    f = compile_(f"member_id in [{', '.join(items[:MAX_IN_ITEMS])}]")
    assert isinstance(f.expr, InList) and len(f.expr.values) == MAX_IN_ITEMS
    text = f"member_id in [{', '.join(items)}]"
    column = text.index(f'"{MAX_IN_ITEMS}"') + 1
    assert error_of(text) == f"column {column}: an 'in' list may hold at most 1,000 values"


@settings(max_examples=300)
@given(st.text(max_size=120))
def test_any_text_compiles_or_raises_row_filter_error(text: str) -> None:
    with contextlib.suppress(RowFilterError):
        compile_(text)


TOKENS = [
    "member_id",
    "status",
    "phone",
    "official_date",
    "==",
    "!=",
    "<",
    ">=",
    "in",
    "not",
    "is",
    "null",
    "and",
    "or",
    "(",
    ")",
    "[",
    "]",
    ",",
    '"OFFICIAL"',
    '"2020-01-01"',
    "7",
    "-",
    "true",
]


@settings(max_examples=300)
@given(st.lists(st.sampled_from(TOKENS), max_size=14).map(" ".join))
def test_token_soup_compiles_or_raises_row_filter_error(text: str) -> None:
    try:
        f = compile_(text)
    except RowFilterError:
        return
    assert compile_(str(f)) == f


# --- properties ----------------------------------------------------------------------------------------

FIELD_TYPES: dict[str, Any] = {spec.name: spec.type for spec in PARTY_MEMBERS.fields.values()}
NULLABLE = sorted(name for name, t in FIELD_TYPES.items() if isinstance(t, list) and "null" in t)


def non_null_type(avro_type: Any) -> Any:
    if isinstance(avro_type, list):
        (branch,) = [b for b in avro_type if b != "null"]
        return branch
    return avro_type


def kind_of(name: str) -> str:
    t = non_null_type(FIELD_TYPES[name])
    if isinstance(t, dict):
        return "date" if t.get("logicalType") == "date" else str(t["type"])
    return str(t)


def values_of(name: str) -> SearchStrategy[Value]:
    """Non-null values of a field: few distinct ones, so records and literals often meet."""
    t = non_null_type(FIELD_TYPES[name])
    kind = kind_of(name)
    if kind == "enum":
        return st.sampled_from(t["symbols"])
    if kind == "date":
        return st.dates(min_value=dt.date(1999, 12, 28), max_value=dt.date(2000, 1, 3))
    assert kind == "string", name
    return st.sampled_from(["", "87", "20", 'a"b\\c', "Nguyễn"]) | st.text(max_size=6)


def maybe_null(name: str) -> SearchStrategy[Value]:
    return st.none() | values_of(name) if name in NULLABLE else values_of(name)


@st.composite
def comparisons(draw: st.DrawFn) -> Expr:
    name = draw(st.sampled_from(sorted(FIELD_TYPES)))
    orderable = kind_of(name) in ("string", "date")
    shape = draw(st.sampled_from(["compare", "in", "null"] if name in NULLABLE else ["compare", "in"]))
    if shape == "null":
        return IsNull(name, draw(st.booleans()))
    if shape == "in":
        values = draw(st.lists(maybe_null(name), min_size=1, max_size=4))
        return InList(name, tuple(values), draw(st.booleans()))
    op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="] if orderable else ["==", "!="]))
    value = draw(maybe_null(name) if op in ("==", "!=") else values_of(name))
    return Comparison(name, op, value)


def depth(expr: Expr) -> int:
    if isinstance(expr, Not):
        return 1 + depth(expr.operand)
    if isinstance(expr, And | Or):
        return max(depth(operand) for operand in expr.operands) + 1
    return 0


def n_ary(children: SearchStrategy[Expr]) -> SearchStrategy[Expr]:
    operands = st.lists(children, min_size=2, max_size=3).map(tuple)
    return children.map(Not) | operands.map(And) | operands.map(Or)


EXPRESSIONS = st.recursive(comparisons(), n_ary, max_leaves=10).filter(lambda e: depth(e) <= MAX_DEPTH // 2)


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    return {name: draw(maybe_null(name)) for name in sorted(FIELD_TYPES)}


def reference(expr: Expr, record: dict[str, Any]) -> bool:
    """The meaning of a filter, spelled out directly (SQL-like: a comparison on null is false)."""
    if isinstance(expr, Or):
        return any(reference(operand, record) for operand in expr.operands)
    if isinstance(expr, And):
        return all(reference(operand, record) for operand in expr.operands)
    if isinstance(expr, Not):
        return not reference(expr.operand, record)
    value = record[expr.field]
    if isinstance(expr, IsNull):
        return value is not None if expr.negated else value is None
    if isinstance(expr, InList):
        if value is None:
            return not expr.negated and any(v is None for v in expr.values)
        found = any(v is not None and v == value for v in expr.values)
        return not found if expr.negated else found
    if expr.value is None:
        return value is None if expr.op == "==" else value is not None
    if value is None:
        return False
    results = {
        "==": value == expr.value,
        "!=": value != expr.value,
        "<": value < expr.value,
        "<=": value <= expr.value,
        ">": value > expr.value,
        ">=": value >= expr.value,
    }
    return bool(results[expr.op])


def fields_of(expr: Expr) -> set[str]:
    if isinstance(expr, Not):
        return fields_of(expr.operand)
    if isinstance(expr, And | Or):
        return set().union(*(fields_of(operand) for operand in expr.operands))
    return {expr.field}


@settings(max_examples=400)
@given(EXPRESSIONS)
def test_canonical_text_round_trips(expr: Expr) -> None:
    f = RowFilter(expr)
    text = str(f)
    assume(len(text) <= MAX_LENGTH)
    again = compile_(text)
    assert again == f
    assert str(again) == text
    assert f.fields == fields_of(expr)


@settings(max_examples=400)
@given(EXPRESSIONS, st.lists(records(), min_size=1, max_size=5))
def test_the_evaluator_agrees_with_the_reference(expr: Expr, rows: list[dict[str, Any]]) -> None:
    f = RowFilter(expr)
    for row in rows:
        assert f.matches(row) == reference(expr, row)


def test_a_filter_is_logged_with_the_literals_of_personal_fields_masked() -> None:
    f = compile_(
        'not (national_id == "087180123456" or phone in ["0912345678", null]) and province_code == "82"'
        " and phone is not null"
    )
    assert f.masked(["national_id", "phone"]) == (
        'not (national_id == "<masked>" or phone in ["<masked>", null]) and province_code == "82"'
        " and phone is not null"
    )
    assert f.masked([]) == str(f)
