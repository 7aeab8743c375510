"""The hub's languages, Vietnamese and English, and its Babel catalogues: one folder,
``services/console/locale/<lang>/LC_MESSAGES/<domain>.po`` (shipped as the console's package data), with a
domain per surface: ``console`` (the web console's pages) and ``errors`` (the sentences of the APIs' and the
command line's refusal codes, :mod:`services.refusals`). Catalogues are kept as text and compiled in memory
when first used: no ``.mo`` file is kept.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LANGUAGES = ("vi", "en")
#: The language of a caller that names neither of :data:`LANGUAGES`.
FALLBACK = "en"
LOCALE_DIR = Path(__file__).parent / "console" / "locale"
#: Ranges of an Accept-Language header looked at; the rest is ignored (the header's size is bounded anyway).
MAX_RANGES = 32


def catalogue_path(domain: str, language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{domain}.po"


@functools.cache
def translations(domain: str, language: str) -> Translations:
    """The ``domain`` catalogue of ``language``, compiled once per process."""
    with catalogue_path(domain, language).open("rb") as po:
        catalogue = read_po(po, locale=language)
    compiled = io.BytesIO()
    write_mo(compiled, catalogue)
    compiled.seek(0)
    return Translations(compiled, domain=domain)


def negotiate(accept_language: str | None) -> str:
    """The language of :data:`LANGUAGES` an ``Accept-Language`` header prefers, its q-values honoured (on a
    tie the first named wins); :data:`FALLBACK` when it names neither, or is absent or malformed."""
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate((accept_language or "").split(",")[:MAX_RANGES]):
        tag, _, parameters = item.partition(";")
        primary = tag.strip().split("-")[0].lower()
        quality = _quality(parameters)
        if primary in LANGUAGES and quality > 0:
            ranked.append((-quality, position, primary))
    return min(ranked)[2] if ranked else FALLBACK


def _quality(parameters: str) -> float:
    """A range's ``q`` (1 when it has none); 0, that is never chosen, when it is malformed."""
    name, _, value = parameters.strip().partition("=")
    if not name:
        return 1.0
    if name.strip().lower() != "q":
        return 0.0
    try:
        quality = float(value.strip())
    except ValueError:
        return 0.0
    return quality if 0.0 <= quality <= 1.0 else 0.0
