"""Every refusal code of the APIs and of the command line has its sentence in the Vietnamese and the English
``errors`` catalogues, and a caller's Accept-Language picks between them."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import typer
from babel.messages.pofile import read_po
from typer.testing import CliRunner, Result

from services import i18n, refusals
from services.api import errors
from services.api.errors import ErrorBody, localize
from services.cli import gov_commands, hub_commands
from services.gateway.app import _REFUSALS
from sharehub import chain
from sharehub import errors as hierarchy
from sharehub.gov import acts


def catalogue(language: str) -> dict[str, str]:
    with Path(i18n.catalogue_path(refusals.DOMAIN, language)).open("rb") as po:
        return {m.id: m.string for m in read_po(po, locale=language) if m.id and isinstance(m.id, str)}


def documented_codes() -> set[str]:
    """The codes ErrorBody's ``error`` field documents."""
    source = inspect.getsource(ErrorBody)
    comment = source[source.index("Stable, machine-readable:") : source.index("error: str")]
    return set(re.findall(r"[a-z]+(?:_[a-z]+)*", comment.split(":", 1)[1])) - {"", "error"}


def every_error_class() -> list[type[hierarchy.SharehubError]]:
    found, todo = [], [hierarchy.SharehubError]
    while todo:
        kind = todo.pop()
        found.append(kind)
        todo.extend(kind.__subclasses__())
    return found


def every_code() -> set[str]:
    mapped = {
        refusals.command_code(kind.__new__(kind))
        for kind in every_error_class()
        if kind is not acts.ActSealRefused  # its code is its reason: acts.REASONS
    }
    return (
        documented_codes()
        | set(errors._CODES.values())
        | set(acts.REASONS)
        | {code for _kind, code in refusals.COMMAND_CODES}
        | {code for _status, code in _REFUSALS.values()}
        | {kind.reason for kind in every_error_class() if issubclass(kind, hierarchy.EnvelopeError)}
        | {chain.GAP, chain.REPLAYED, chain.DUPLICATE, chain.FORK, "misrouted"}  # ChainViolation's reasons
        | mapped
    )


def test_the_documented_codes_are_read() -> None:
    assert {"bad_request", "purpose_not_allowed", "unavailable"} <= documented_codes()
    assert len(documented_codes()) == 9


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_every_code_has_a_sentence(language: str) -> None:
    said = catalogue(language)
    assert sorted(c for c in every_code() if not said.get(c, "").strip()) == []


def test_both_catalogues_say_the_same_codes_each_in_its_language() -> None:
    vi, en = catalogue("vi"), catalogue("en")
    assert vi.keys() == en.keys()
    assert all(vi[c].strip() and en[c].strip() for c in vi)
    assert [c for c in vi if vi[c] == en[c]] == []
    assert vi["bad_request"] == "dữ liệu vào không hợp lệ" and en["bad_request"] == "bad input"


def test_an_unknown_code_has_no_sentence() -> None:
    assert refusals.sentence("no_such_code", "vi") is None
    body = {"error": "no_such_code", "detail": "d"}
    assert localize(body, {"accept-language": "vi"}) == {} and "message" not in body


def test_an_act_refused_for_its_seal_is_said_by_its_seal_code() -> None:
    body = {"error": "forbidden", "detail": "d", "act_seal": acts.STALE}
    assert localize(body, {"accept-language": "vi"})["Content-Language"] == "vi"
    assert body["message"] == catalogue("vi")[acts.STALE]


@pytest.mark.parametrize(
    ("header", "language"),
    [
        (None, "en"),
        ("", "en"),
        ("vi", "vi"),
        ("vi-VN", "vi"),
        ("EN-us", "en"),
        ("fr", "en"),
        ("*", "en"),
        ("fr-FR, vi;q=0.5, en;q=0.4", "vi"),
        ("en;q=0.4, vi;q=0.8", "vi"),
        ("vi, en", "vi"),
        ("en, vi", "en"),
        ("vi;q=0, en;q=0.1", "en"),
        ("vi;q=abc", "en"),
        ("vi;q=2", "en"),
        ("vi;q=nan", "en"),
        ("vi;level=1", "en"),
        (";;,,,vi", "vi"),
        (",".join(["fr"] * 100 + ["vi"]), "en"),  # past the ranges looked at
    ],
)
def test_accept_language_picks_vietnamese_or_english(header: str | None, language: str) -> None:
    assert i18n.negotiate(header) == language


def test_the_command_line_says_its_failure_in_the_language_set(tmp_path: Path) -> None:
    not_a_pack = tmp_path / "pack.zip"
    not_a_pack.write_bytes(b"not a zip")
    command = ["audit", "verify-pack", str(not_a_pack), "--anchor", "0" * 64]
    vi = sharehub(command, {"SHAREHUB_LANGUAGE": "vi"})
    en = sharehub(command, {"SHAREHUB_LANGUAGE": None})
    assert vi.exit_code == en.exit_code == 2
    detail = "not a readable zip: BadZipFile: File is not a zip file"
    assert vi.stderr.strip() == f"error: dữ liệu vào không hợp lệ — {detail}"
    assert en.stderr.strip() == f"error: bad input — {detail}"


def test_a_language_the_command_line_does_not_know_is_refused(tmp_path: Path) -> None:
    refused = sharehub(["gov", "show"], {"SHAREHUB_LANGUAGE": "fr", "SHAREHUB_HOME": str(tmp_path)})
    assert refused.exit_code == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.startswith("error: a parameter or field is missing or malformed — ")
    assert "language" in refused.stderr and not any(tmp_path.iterdir())


def sharehub(argv: list[str], env: dict[str, str | None]) -> Result:
    root = typer.Typer()
    root.add_typer(hub_commands.audit_app, name="audit")
    root.add_typer(gov_commands.app, name="gov")
    return CliRunner().invoke(root, argv, env=env)
