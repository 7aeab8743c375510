"""`sharehub agency backup|restore`: a site's keys, TLS key and journals come back with its passphrase; its
clear secrets are sealed, the passphrase is never in the archive, and a refusal changes nothing."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from connectors.journal import Journal, SourceState, read_journal
from connectors.sdk import CLIENT_KEY_FILE, CREDENTIAL_FILE, make_tls_request
from connectors.site import PASSPHRASE_BESIDE, AgencySite
from services.backup import create
from services.cli import agency_commands
from services.hub import Hub
from sharehub.kek import load_kek
from sharehub.keys import write_private

PASSPHRASE = b"the site's own passphrase"
CREDENTIAL = b"shc_the-agency-s-credential-in-clear"


def agency(*args: str) -> Result:
    root = typer.Typer()
    root.add_typer(agency_commands.app, name="agency")
    root.command()(lambda: None)
    env = {"SHAREHUB_SIGNING_PASSPHRASE_FILE": None, "SHAREHUB_HOME": None}
    return CliRunner().invoke(root, ["agency", *args], env=env)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    home = tmp_path / "coc"
    AgencySite.init(home, "coc", PASSPHRASE)
    make_tls_request(home, "sharehub", PASSPHRASE)
    write_private(home / CREDENTIAL_FILE, CREDENTIAL + b"\n")
    write_private(home / PASSPHRASE_BESIDE, PASSPHRASE + b"\n")
    with Journal(home, "party-members") as journal:
        done = SourceState(name="members.csv", total=3, acked=3, published=3, done=True)
        journal.put("file:sha256:ab", done)
    return home


def passphrase_file(tmp_path: Path, value: bytes = PASSPHRASE) -> str:
    path = tmp_path / f"passphrase-{len(list(tmp_path.glob('passphrase-*')))}"
    write_private(path, value + b"\n")
    return str(path)


def test_a_site_comes_back_from_its_backup_and_its_key_opens_with_the_passphrase(
    site: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "site.tar"
    made = agency("backup", str(archive), "--home", str(site), "--passphrase-file", passphrase_file(tmp_path))
    assert made.exit_code == 0, made.output
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"site.json", "keys/1.pem", "requests/1.json", CLIENT_KEY_FILE, CREDENTIAL_FILE} <= names
    assert "connectors/party-members.journal.db" in names and PASSPHRASE_BESIDE not in names
    raw = archive.read_bytes()
    assert PASSPHRASE not in raw and CREDENTIAL not in raw

    target = tmp_path / "new-machine" / "coc"
    done = agency(
        "restore", str(archive), "--home", str(target), "--passphrase-file", passphrase_file(tmp_path)
    )
    assert done.exit_code == 0, done.output
    restored = AgencySite(target).signing_key(PASSPHRASE)
    assert restored.public_key() == AgencySite(site).signing_key(PASSPHRASE).public_key()
    for name in (
        "site.json",
        "keys/1.pem",
        CLIENT_KEY_FILE,
        CREDENTIAL_FILE,
    ):
        assert (target / name).read_bytes() == (site / name).read_bytes(), name
    journal = "connectors/party-members.journal.db"
    assert read_journal(target / journal) == read_journal(site / journal)


def test_a_wrong_passphrase_is_refused_and_nothing_is_written(site: Path, tmp_path: Path) -> None:
    archive = tmp_path / "site.tar"
    wrong = passphrase_file(tmp_path, b"a mistyped passphrase")
    made = agency("backup", str(archive), "--home", str(site), "--passphrase-file", wrong)
    assert (
        made.exit_code == 2 and "does not open with this passphrase" in made.output and not archive.exists()
    )
    agency("backup", str(archive), "--home", str(site), "--passphrase-file", passphrase_file(tmp_path))
    target = tmp_path / "new"
    refused = agency("restore", str(archive), "--home", str(target), "--passphrase-file", wrong)
    assert refused.exit_code == 2 and "a wrong master key or passphrase" in refused.output, refused.output
    assert "Traceback" not in refused.output and not target.exists()


def test_a_hubs_backup_is_not_restored_as_a_site(offline_hub: Hub, tmp_path: Path) -> None:
    archive = tmp_path / "hub.tar"
    settings = offline_hub.settings
    create(settings, lambda: load_kek(settings, settings.home), archive)
    refused = agency("restore", str(archive), "--home", str(tmp_path / "new"), "--passphrase-file",
                     passphrase_file(tmp_path))  # fmt: skip
    assert refused.exit_code == 2 and "not of an agency's site" in refused.output, refused.output
    assert not (tmp_path / "new").exists()
