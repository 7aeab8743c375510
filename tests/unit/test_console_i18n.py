"""Every message of the console's templates is in its Vietnamese and English catalogues, translated."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po

from services.console import i18n
from services.console.render import TEMPLATES, Pages


def template_msgids() -> set[str]:
    found: set[str] = set()
    for template in sorted(TEMPLATES.glob("*.html")):
        for _line, message, _comments, _context in extract_from_file(
            "jinja2", str(template), options={"extensions": "jinja2.ext.i18n"}
        ):
            found.add(message if isinstance(message, str) else message[0])
    return found


def catalogue(language: str) -> dict[str, str]:
    with Path(i18n.catalogue_path(language)).open("rb") as po:
        return {m.id: m.string for m in read_po(po, locale=language) if m.id and isinstance(m.id, str)}


def test_the_templates_use_messages() -> None:
    assert {"Log in", "Agreement queue", "Browse records"} <= template_msgids()


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_every_template_message_is_translated(language: str) -> None:
    translated = catalogue(language)
    missing = sorted(m for m in template_msgids() if not translated.get(m, "").strip())
    assert missing == [], f"{language}: untranslated: {missing}"


def test_the_vietnamese_catalogue_is_vietnamese() -> None:
    vi = catalogue("vi")
    same = [m for m in template_msgids() if vi[m] == m]
    assert len(same) < 3, same  # names such as "API" may stay; sentences may not
    assert vi["Log in"] == "Đăng nhập"


def test_a_page_renders_in_each_language() -> None:
    pages = Pages()
    assert "Đăng nhập" in pages.render("vi", "login.html", login_token="t").body.decode()
    assert "Log in" in pages.render("en", "login.html", login_token="t").body.decode()


def test_an_unknown_language_cookie_falls_back_to_the_default() -> None:
    assert i18n.chosen("fr", "vi") == "vi"
    assert i18n.chosen("en", "vi") == "en"
    assert i18n.chosen(None, "en") == "en"
