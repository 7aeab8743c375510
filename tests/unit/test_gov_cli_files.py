"""Commands of ``sharehub gov`` that take a file refuse an unreadable one clearly, before they open the hub
(the broker here is an address nothing listens on: reaching it would hang, not refuse)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from services.cli import gov_commands


def gov(home: Path, *args: str) -> Result:
    root = typer.Typer()
    root.add_typer(gov_commands.app, name="gov")
    root.command()(lambda: None)
    env = {"SHAREHUB_HOME": str(home), "SHAREHUB_KAFKA_BOOTSTRAP": "127.0.0.1:9"}
    return CliRunner().invoke(root, ["gov", *args], env=env)


@pytest.mark.parametrize(
    ("content", "words"),
    [(None, "cannot read"), (b"\xff\xfe not text", "cannot read"), (b"{not json", "the schema")],
)
def test_register_schema_refuses_a_bad_file_before_opening_the_hub(
    tmp_path: Path, content: bytes | None, words: str
) -> None:
    schema = tmp_path / "next.avsc"
    if content is not None:
        schema.write_bytes(content)
    done = gov(tmp_path, "register-schema", "--as", "coc", "--dataset", "tasks", "--schema", str(schema))
    assert done.exit_code == 2, done.output
    assert words in done.output
    assert done.exception is None or isinstance(done.exception, SystemExit)
