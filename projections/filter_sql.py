"""Row-filter expressions (sharehub/row_filter.py) as SQL over a read model's JSON ``fields`` column, with
exactly the Python semantics: a comparison with a null or absent value is false (never SQL's unknown, which
``not`` would keep unknown), ``is null`` and ``== null`` find nulls. Works on SQLite (JSON1) and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, not_, or_
from sqlalchemy.sql.elements import BinaryExpression

from sharehub.row_filter import And, Comparison, Expr, InList, IsNull, Not, RowFilter, Value

_OPERATORS = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def where(row_filter: RowFilter, fields: Any) -> ColumnElement[bool]:
    """The WHERE clause for ``row_filter`` on the JSON column ``fields``."""
    return _sql(row_filter.expr, fields)


def typed(fields: Any, name: str, sample: Value) -> Any:
    """The JSON value of field ``name``, as SQL of the literal's type (dates are ISO strings)."""
    element = fields[name]
    if isinstance(sample, bool):
        return element.as_boolean()
    if isinstance(sample, int):
        return element.as_float()
    return element.as_string()


def _literal(value: Value) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value


def _known(condition: Any) -> ColumnElement[bool]:
    """A condition that is false, not unknown, where SQL would say unknown (a null operand)."""
    known: ColumnElement[bool] = func.coalesce(condition, false())
    return known


def _sql(expr: Expr, fields: Any) -> ColumnElement[bool]:
    if isinstance(expr, Comparison):
        if expr.value is None:
            absent: ColumnElement[bool] = fields[expr.field].as_string().is_(None)
            return absent if expr.op == "==" else not_(absent)
        column = typed(fields, expr.field, expr.value)
        comparison: BinaryExpression[bool] = _OPERATORS[expr.op](column, _literal(expr.value))
        return _known(comparison)
    if isinstance(expr, InList):
        present = [v for v in expr.values if v is not None]
        column = typed(fields, expr.field, present[0]) if present else fields[expr.field].as_string()
        inside = _known(column.in_([_literal(v) for v in present])) if present else false()
        if None in expr.values:
            inside = or_(inside, fields[expr.field].as_string().is_(None))
        if expr.negated:
            return and_(not_(inside), column.is_not(None))
        return inside
    if isinstance(expr, IsNull):
        missing: ColumnElement[bool] = fields[expr.field].as_string().is_(None)
        return not_(missing) if expr.negated else missing
    if isinstance(expr, Not):
        negated: ColumnElement[bool] = not_(_sql(expr.operand, fields))
        return negated
    if isinstance(expr, And):
        return and_(*(_sql(o, fields) for o in expr.operands))
    return or_(*(_sql(o, fields) for o in expr.operands))
