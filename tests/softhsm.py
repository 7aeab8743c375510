"""Throwaway SoftHSM2 tokens for the tests of the PKCS#11 key-encryption key.

Each token lives in its own directory with its own ``softhsm2.conf`` (``scripts/softhsm.sh token``); the
caller points ``SOFTHSM2_CONF`` at it before opening the token. Without SoftHSM2 the test is skipped, and
says so (``make test`` installs it: ``scripts/softhsm.sh install``).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from sharehub.kek_pkcs11 import SOFTHSM_MODULE, Pkcs11Config

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class SoftHsmToken:
    conf: Path
    label: str
    pin_file: Path

    def config(self, key_label: str = "sharehub-kek") -> Pkcs11Config:
        return Pkcs11Config(SOFTHSM_MODULE, self.label, self.pin_file, key_label)

    def env(self, key_label: str = "sharehub-kek") -> dict[str, str]:
        """The hub's settings for this token, as environment variables."""
        return {
            "SOFTHSM2_CONF": str(self.conf),
            "SHAREHUB_KEK": "pkcs11",
            "SHAREHUB_PKCS11_MODULE": str(SOFTHSM_MODULE),
            "SHAREHUB_PKCS11_TOKEN": self.label,
            "SHAREHUB_PKCS11_PIN_FILE": str(self.pin_file),
            "SHAREHUB_PKCS11_KEY_LABEL": key_label,
        }


def make_token(directory: Path, label: str = "sharehub-test") -> SoftHsmToken:
    """A new token in ``directory`` with a random user PIN in an owner-only file beside it."""
    if not SOFTHSM_MODULE.is_file() or shutil.which("softhsm2-util") is None:
        pytest.skip(f"SoftHSM2 is not installed ({SOFTHSM_MODULE}); run scripts/softhsm.sh install")
    pin_file = directory / "user.pin"
    made = subprocess.run(
        [REPO / "scripts" / "softhsm.sh", "token", directory, label, pin_file],
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    return SoftHsmToken(Path(made.stdout.strip().splitlines()[-1]), label, pin_file)
