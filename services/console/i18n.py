"""The console's languages: Vietnamese (the default) and English, from the ``console`` domain of the hub's
Babel catalogues (:mod:`services.i18n`).

A visitor's choice is a ``lang`` cookie; without one, the setting ``console_language`` decides.
"""

from __future__ import annotations

from pathlib import Path

from babel.support import Translations

from services import i18n

LANGUAGES = i18n.LANGUAGES
COOKIE = "lang"
DOMAIN = "console"


def catalogue_path(language: str) -> Path:
    return i18n.catalogue_path(DOMAIN, language)


def load_translations(language: str) -> Translations:
    return i18n.translations(DOMAIN, language)


def chosen(cookie: str | None, default: str) -> str:
    """The language a visitor chose (its cookie), else the hub's default."""
    return cookie if cookie in LANGUAGES else default
