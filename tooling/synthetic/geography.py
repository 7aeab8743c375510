"""Viet Nam's administrative geography since the 1 July 2025 reform: 34 provinces, 3,321 communes.

The data comes from the ``vietnam-provinces`` package (data version 2025-10-18), read once per process
and kept as small frozen dataclasses. Codes are strings with their official widths (province ``"01"``,
commune ``"00070"``) because that is how they appear in the datasets: as identifiers, not numbers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache

from vietnam_provinces import NESTED_DIVISIONS_JSON_PATH

PROVINCE_CODE_WIDTH = 2
COMMUNE_CODE_WIDTH = 5


@dataclass(frozen=True, slots=True)
class Province:
    """A province or centrally-run city."""

    code: str
    name: str
    #: ``"tỉnh"`` or ``"thành phố trung ương"``.
    kind: str


@dataclass(frozen=True, slots=True)
class Commune:
    """A commune-level unit: an urban ward, a rural commune or a special zone."""

    code: str
    name: str
    province_code: str
    #: ``"phường"``, ``"xã"`` or ``"đặc khu"``.
    kind: str


@cache
def _load() -> tuple[tuple[Province, ...], tuple[Commune, ...]]:
    with NESTED_DIVISIONS_JSON_PATH.open(encoding="utf-8") as fh:
        raw = json.load(fh)
    provinces: list[Province] = []
    communes: list[Commune] = []
    for p in raw:
        province = Province(
            code=f"{p['code']:0{PROVINCE_CODE_WIDTH}d}", name=p["name"], kind=p["division_type"]
        )
        provinces.append(province)
        communes.extend(
            Commune(
                code=f"{w['code']:0{COMMUNE_CODE_WIDTH}d}",
                name=w["name"],
                province_code=province.code,
                kind=w["division_type"],
            )
            for w in p["wards"]
        )
    return tuple(provinces), tuple(communes)


def provinces() -> tuple[Province, ...]:
    """All provinces, in the order of their codes."""
    return _load()[0]


def communes() -> tuple[Commune, ...]:
    """All communes, grouped by province in the order of their codes."""
    return _load()[1]


@cache
def _provinces_by_code() -> dict[str, Province]:
    return {p.code: p for p in provinces()}


@cache
def _communes_by_code() -> dict[str, Commune]:
    return {c.code: c for c in communes()}


def province(code: str) -> Province:
    """The province with this two-digit code; ``KeyError`` if there is none."""
    return _provinces_by_code()[code]


def commune(code: str) -> Commune:
    """The commune with this five-digit code; ``KeyError`` if there is none."""
    return _communes_by_code()[code]


def province_of(commune_code: str) -> Province:
    """The province a commune belongs to; ``KeyError`` for an unknown commune code."""
    return province(commune(commune_code).province_code)
