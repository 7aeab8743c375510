"""docs/authorisation.md is the matrix as it stands: regenerate it with ``python -m tests.authz.render``."""

from __future__ import annotations

from tests.authz.render import render
from tests.conftest import REPO


def test_the_documented_matrix_is_the_tested_one() -> None:
    documented = (REPO / "docs" / "authorisation.md").read_text(encoding="utf-8")
    assert documented == render(), "run: python -m tests.authz.render > docs/authorisation.md"
