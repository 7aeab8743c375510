"""The Kafka broker's jars, fetched once per machine from Maven Central into the sharehub cache.

``ensure_jars(cache_dir)`` returns ``<cache_dir>/kafka-<KAFKA_VERSION>/libs``, a directory of jars that
``java -cp '<libs>/*' kafka.Kafka`` can run. Maven resolves the pinned ``pom.xml`` beside this module (the
machine reaches Maven Central but not the Apache download mirrors, so the binary tarball is not an
option). The directory only ever appears complete: Maven copies into a temporary directory beside it, a
marker listing the jars is written last, and the temporary directory is then renamed into place. A
directory without a valid marker is a leftover of an interrupted fetch and is replaced.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import tempfile
from pathlib import Path

from sharehub.errors import JarFetchError

KAFKA_VERSION = "3.9.1"
SCALA_VERSION = "2.13"
#: Written last into a complete libs dir; lists the jar file names, one a line.
MARKER_NAME = ".complete"
POM = Path(__file__).with_name("pom.xml")
#: Generous: a cold Maven repository needs ~46 MB from Central; a stuck resolver must not hang forever.
MVN_TIMEOUT_S = 900.0
_TAIL_LINES = 40


def kafka_dir(cache_dir: Path) -> Path:
    return cache_dir.expanduser().resolve() / f"kafka-{KAFKA_VERSION}"


def libs_dir(cache_dir: Path) -> Path:
    return kafka_dir(cache_dir) / "libs"


def is_complete(libs: Path) -> bool:
    """True when ``libs`` holds a finished fetch: the marker exists and every jar it lists is there."""
    marker = libs / MARKER_NAME
    try:
        names = [n for n in marker.read_text().splitlines() if n]
    except OSError:
        return False
    core = f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}.jar"
    return core in names and all((libs / n).is_file() for n in names)


def ensure_jars(cache_dir: Path) -> Path:
    """Return the libs dir of the pinned Kafka, fetching it with Maven first if it is not complete."""
    libs = libs_dir(cache_dir)
    if is_complete(libs):
        return libs
    parent = libs.parent
    parent.mkdir(parents=True, exist_ok=True)
    # Several processes (the test suite, a developer's CLI) may ask at once: one fetches, the
    # others wait on the lock and then find the finished directory.
    with open(parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_complete(libs):
            return libs
        _fetch_into(libs)
    return libs


def _fetch_into(libs: Path) -> None:
    mvn = shutil.which("mvn")
    tmp = Path(tempfile.mkdtemp(prefix=".libs-", dir=libs.parent))
    try:
        out = tmp / "jars"
        # Maven gets its own copy of the pom so that nothing (target/, ...) is written into the
        # source tree, which may be read-only or shared.
        pom = tmp / "pom.xml"
        shutil.copyfile(POM, pom)
        cmd = [
            mvn or "mvn",
            "-q",
            "-B",
            "dependency:copy-dependencies",
            f"-DoutputDirectory={out}",
            "-DincludeScope=runtime",
            "-f",
            str(pom),
        ]
        if mvn is None:
            raise JarFetchError(
                f"cannot fetch the Kafka {KAFKA_VERSION} jars: Maven ('mvn') is not on PATH. Install "
                f"Maven (e.g. 'apt-get install maven') so that `{' '.join(cmd)}` can run."
            )
        try:
            proc = subprocess.run(
                cmd,
                cwd=tmp,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=MVN_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired as exc:
            output = exc.output if isinstance(exc.output, str) else ""
            raise JarFetchError(
                f"fetching the Kafka {KAFKA_VERSION} jars timed out after {MVN_TIMEOUT_S:.0f} s: "
                f"`{' '.join(cmd)}`. Last lines of Maven's output:\n{_tail(output)}"
            ) from exc
        if proc.returncode != 0:
            raise JarFetchError(
                f"fetching the Kafka {KAFKA_VERSION} jars failed: `{' '.join(cmd)}` exited with "
                f"{proc.returncode}. Last lines of Maven's output:\n{_tail(proc.stdout)}"
            )
        names = sorted(p.name for p in out.glob("*.jar"))
        core = f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}.jar"
        if core not in names:
            raise JarFetchError(
                f"`{' '.join(cmd)}` succeeded but {core} is not among the {len(names)} jars it copied; "
                f"does {POM} still pin Kafka {KAFKA_VERSION}?"
            )
        (out / MARKER_NAME).write_text("".join(f"{n}\n" for n in names))
        if libs.exists():
            # An incomplete leftover (we hold the lock and it failed is_complete).
            shutil.rmtree(libs)
        out.rename(libs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _tail(text: str, lines: int = _TAIL_LINES) -> str:
    tail = text.strip().splitlines()[-lines:]
    return "\n".join(tail) if tail else "(no output)"
