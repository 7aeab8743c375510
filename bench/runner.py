"""Runs each scenario in a fresh subprocess and takes its peak RSS from the kernel's own accounting.

``os.wait4`` returns the resource usage of exactly the child it reaps (and of the descendants that child
waited for), so each scenario's ``ru_maxrss`` is its own, not the largest of the whole suite as
``getrusage(RUSAGE_CHILDREN)`` would give after several children.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.model import Config, ScenarioResult, load, save
from bench.scenarios import SCENARIOS, Scenario
from sharehub.collector import collect_for_batches
from sharehub.errors import BenchmarkError

#: A full scenario takes minutes; one still running after this is stuck.
SCENARIO_TIMEOUT_S = 1800.0


class ScenarioFailed(BenchmarkError):
    """A scenario raised or gave a wrong result: the run stops, and says which."""


def run_suite(config: Config, only: set[str] | None = None) -> list[ScenarioResult]:
    chosen = [s for s in SCENARIOS if only is None or s.id in only or s.name in only]
    results = []
    for scenario in chosen:
        if scenario.needs_kafka and config.bootstrap is None:
            raise ScenarioFailed(f"scenario {scenario.id} ({scenario.name}) needs a Kafka broker")
        print(f"[bench] scenario {scenario.id} ({scenario.name}) …", file=sys.stderr, flush=True)
        # What the scenario before wrote goes to the disk now: the kernel would otherwise write it back
        # (30 s later by default) in the middle of this scenario's measurement.
        os.sync()
        result = run_in_subprocess(scenario, config)
        print(
            f"[bench] scenario {scenario.id} done in {result.wall_s:.0f} s, "
            f"peak RSS {result.peak_rss_kb / 1024:.0f} MiB",
            file=sys.stderr,
            flush=True,
        )
        results.append(result)
    return results


def run_in_subprocess(scenario: Scenario, config: Config) -> ScenarioResult:
    config.workdir.mkdir(parents=True, exist_ok=True)
    config_file = config.workdir / f"{scenario.id}.config.json"
    out_file = config.workdir / f"{scenario.id}.result.json"
    out_file.unlink(missing_ok=True)
    save(config_file, config.to_json())
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", "_scenario", scenario.id, str(config_file), str(out_file)],
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # so a timeout can stop the scenario and whatever it started
    )
    status, usage = _wait(proc, started + SCENARIO_TIMEOUT_S)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or not out_file.exists():
        raise ScenarioFailed(f"scenario {scenario.id} ({scenario.name}) exited with {proc.returncode}")
    result = ScenarioResult.from_json(load(out_file))
    result.peak_rss_kb = usage.ru_maxrss  # KiB on Linux
    result.wall_s = time.monotonic() - started
    return result


def _wait(proc: subprocess.Popen[bytes], deadline: float) -> tuple[int, resource.struct_rusage]:
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            return status, usage
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            os.wait4(proc.pid, 0)
            raise ScenarioFailed(f"scenario process {proc.pid} ran past {SCENARIO_TIMEOUT_S:.0f} s; killed")
        time.sleep(0.2)


def run_scenario_here(scenario_id: str, config_file: Path, out_file: Path) -> None:
    """The subprocess side: run one scenario and write its result, collecting garbage as the hub's batch
    processes do (both sides of every comparison run in this process)."""
    collect_for_batches()
    scenario = next(s for s in SCENARIOS if s.id == scenario_id)
    result = scenario.runner()(Config.from_json(load(config_file)))
    save(out_file, result.to_json())
