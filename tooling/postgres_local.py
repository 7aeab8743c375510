"""A PostgreSQL server of one's own on loopback, started and stopped with ``scripts/postgres.sh``: for the
tests and chaos scenarios that stop the read-model database under the hub (the suite's own server is shared
by every test and is never stopped)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from sharehub.errors import SharehubError

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "postgres.sh"


class LocalPostgres:
    """One server on ``port``, its data directly under the system's temporary directory (as root the server
    runs as 'postgres', who may not enter the directory of whoever started it)."""

    def __init__(self, port: int) -> None:
        self.base = Path(tempfile.gettempdir()) / f"sharehub-pg-{port}-{os.getpid()}"
        self._env = {**os.environ, "SHAREHUB_TEST_PG_PORT": str(port), "SHAREHUB_TEST_PG_DIR": str(self.base)}

    def start(self) -> str:
        """Start it (initialised the first time); its SQLAlchemy URL."""
        done = subprocess.run([SCRIPT, "start"], env=self._env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SharehubError(f"PostgreSQL did not start: {done.stderr.strip()[-2000:]}")
        return done.stdout.strip().splitlines()[-1]

    def stop(self) -> None:
        """A fast shutdown: open connections are cut, committed data stays."""
        subprocess.run([SCRIPT, "stop"], env=self._env, capture_output=True, check=False)

    def remove(self) -> None:
        """Stop it and delete its data."""
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
