"""``sharehub backup``: what a hub cannot get back from its log (key store, anchors, CA), out and back.

``create`` works offline (no broker); ``restore`` writes a new home and the read models are then rebuilt
from the log with ``sharehub project rebuild --all``. See RELIABILITY.md, "Backup and restore".
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from services.cli.errors import reports_errors
from sharehub.errors import ConfigurationError, InputError
from sharehub.kek import KeyEncryptionKey, load_kek
from sharehub.settings import Settings

if TYPE_CHECKING:
    from services.backup_archive import BackupReader

app = typer.Typer(
    help="Back up what the log cannot give back (key store, governance anchors, CA), and restore it.",
    no_args_is_help=True,
)
err = Console(stderr=True, soft_wrap=True)


@app.command("create")
@reports_errors
def backup_create(
    out: Annotated[Path, typer.Argument(help="The archive to write (a tar file, new)")],
) -> None:
    """Write the hub's backup to OUT: the key store as it is at rest (keys wrapped, never unwrapped), the
    governance anchors, the hub CA and the API's certificate (secrets sealed under the key-encryption key),
    erasure receipts, publishing journals and the settings that matter. The master key is not in it."""
    from services.backup import create

    settings = Settings()
    manifest = create(settings, lambda: load_kek(settings, settings.home), out)
    for member in manifest.members:
        print(f"{member.sha256}  {member.name}{'  (sealed)' if member.sealed else ''}")
    err.print(
        f"backup of hub {manifest.topic_prefix!r} written to {out}: {len(manifest.members)} members, keys "
        f"wrapped under {manifest.kek_id}. Keep the master key (or token) apart from it: the backup opens "
        "nothing without it",
        markup=False,
        highlight=False,
    )


@app.command("verify")
@reports_errors
def backup_verify(
    archive: Annotated[Path, typer.Argument(help="A backup archive")],
    topic_prefix: Annotated[str | None, typer.Option(help="Refuse a backup of another hub")] = None,
) -> None:
    """Check every member against the manifest, and the manifest against its seal when the hub's
    key-encryption key is configured; exit 2 on any difference."""
    from services.backup_archive import BackupReader
    from sharehub.errors import BackupInvalid

    with BackupReader(archive) as reader:
        manifest = reader.manifest
        if topic_prefix is not None and (manifest.kind, manifest.topic_prefix) != ("hub", topic_prefix):
            raise BackupInvalid(f"the backup is of {manifest.home_name}, not of the hub {topic_prefix!r}")
        reader.verify()
        sealed = _check_seal_if_possible(reader)
    print(f"{manifest.kind}\t{manifest.topic_prefix}\t{manifest.agency}\ncreated_at\t{manifest.created_at}")
    print(f"kek\t{manifest.kek_id}")
    print(f"members\t{len(manifest.members)}, each as its manifest says")
    print(f"seal\t{sealed}")


def _check_seal_if_possible(reader: BackupReader) -> str:
    """The seal checked with the KEK this hub is configured with, when it is the backup's; otherwise a
    warning, saying why not (the hashes alone were checked)."""
    manifest = reader.manifest
    if manifest.kind == "site":
        return _unchecked(
            "a site's backup is sealed with its passphrase: 'sharehub agency restore' checks it"
        )
    settings = Settings()
    try:
        kek = load_kek(settings, settings.home)
    except ConfigurationError as exc:
        return _unchecked(str(exc))
    try:
        if kek.kek_id != manifest.kek_id:
            return _unchecked(
                f"sealed under {manifest.kek_id}, and this hub's key-encryption key is {kek.kek_id}"
            )
        reader.check_seal(kek)
    finally:
        kek.close()
    return f"verified with {kek.kek_id}"


def _unchecked(why: str) -> str:
    err.print(f"warning: the manifest's seal is not checked: {why}", markup=False, highlight=False)
    return "not checked"


@app.command("restore")
@reports_errors
def backup_restore(
    archive: Annotated[Path, typer.Argument(help="A backup archive")],
    home: Annotated[Path, typer.Option("--home", help="The new home: absent or empty")],
    topic_prefix: Annotated[str, typer.Option(help="The hub being restored: a backup of another is refused")],
    master_key_file: Annotated[
        Path | None,
        typer.Option(help="The master key, kept apart from the backup [SHAREHUB_MASTER_KEY_FILE]"),
    ] = None,
) -> None:
    """Restore a backup into a new or empty home, checking everything first (a refusal changes nothing);
    then rebuild every read model from the log: SHAREHUB_HOME=HOME sharehub project rebuild --all."""
    from services.restore import SETTINGS_FILE, restore

    settings = Settings().model_copy(update={"home": home})
    if master_key_file is not None:
        settings = settings.model_copy(update={"master_key_file": master_key_file})
    elif settings.kek == "file" and not (settings.master_key or settings.master_key_file):
        raise InputError(
            "give --master-key-file (the master key kept apart from the backup), set "
            "SHAREHUB_MASTER_KEY_FILE, or SHAREHUB_KEK=pkcs11 with the token's settings"
        )

    def open_kek() -> KeyEncryptionKey:
        return load_kek(settings, home)

    given = settings.master_key_file
    where_the_key_is = {} if given is None else {"SHAREHUB_MASTER_KEY_FILE": str(given.resolve())}
    manifest = restore(archive, home, topic_prefix, open_kek, where_the_key_is)
    settings_file = home / SETTINGS_FILE
    print(home)
    err.print(
        f"restored hub {manifest.topic_prefix!r} (backup of {manifest.created_at}) into {home}. Next: "
        f"set -a; . {settings_file}; set +a; SHAREHUB_HOME={home} sharehub project rebuild --all",
        markup=False,
        highlight=False,
    )
