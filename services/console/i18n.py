"""The console's languages: Vietnamese (the default) and English, from the Babel catalogues kept as text in
``locale/<lang>/LC_MESSAGES/console.po``; compiled in memory when the console starts (no ``.mo`` is kept).

A visitor's choice is a ``lang`` cookie; without one, the setting ``console_language`` decides.
"""

from __future__ import annotations

import io
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LANGUAGES = ("vi", "en")
COOKIE = "lang"
LOCALE_DIR = Path(__file__).parent / "locale"


def catalogue_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / "console.po"


def load_translations(language: str) -> Translations:
    with catalogue_path(language).open("rb") as po:
        catalogue = read_po(po, locale=language)
    compiled = io.BytesIO()
    write_mo(compiled, catalogue)
    compiled.seek(0)
    return Translations(compiled, domain="console")


def chosen(cookie: str | None, default: str) -> str:
    """The language a visitor chose (its cookie), else the hub's default."""
    return cookie if cookie in LANGUAGES else default
