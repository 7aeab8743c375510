"""``python -m bench``: the suite (``--quick`` for tiny sizes), ``scale``, and ``report``.

python -m bench [--quick] [--only a,c] [--query-rate R] [--api-workers N]
                                           hub against baselines; writes BENCHMARKS.md (not with --quick,
                                           --only, another query rate than 500 or another API than 1 process)
python -m bench scale --members 5000000    publish → projection → query at scale, projector RSS sampled
                                           (--postgres: on PostgreSQL read models)
python -m bench audit-scale --events N   plain read vs audit (1 and N workers) of N published events
python -m bench purge [--members N]        time from an agreement's end to the consumer losing access
python -m bench read-model-growth --rows N a read model's write rate as it grows, against a plain loop
python -m bench profile [--events N]       py-spy flame graphs of publishing and of the projection worker
python -m bench report                     rebuild BENCHMARKS.md and the charts from bench/results/
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import shutil
import sys
from pathlib import Path

from bench import charts, machine, report
from bench.environment import BENCH_HOME, broker
from bench.model import Config, ScenarioResult, load, save
from bench.runner import run_scenario_here, run_suite
from bench.scenarios import SCENARIOS

#: The query scenario's rate in every published run.
DEFAULT_QUERY_RATE = 500.0


def _command(argv: list[str]) -> str:
    return shlex.join([".venv/bin/python", "-m", "bench", *argv])


def suite(argv: list[str], quick: bool, only: set[str] | None, query_rate: float, api_workers: int) -> None:
    workdir = BENCH_HOME / ("quick" if quick else "suite")
    shutil.rmtree(workdir, ignore_errors=True)
    needs_kafka = any(s.needs_kafka for s in SCENARIOS if only is None or s.id in only or s.name in only)
    config = Config(quick, workdir, None, query_rate=query_rate, api_workers=api_workers)
    if needs_kafka:
        with broker() as bootstrap:
            results = run_suite(dataclasses.replace(config, bootstrap=bootstrap), only)
    else:
        results = run_suite(config, only)
    payload = {
        **machine.run_header("make bench" if argv == [] else _command(argv)),
        "results": [r.to_json() for r in results],
    }
    if quick or only is not None or query_rate != DEFAULT_QUERY_RATE or api_workers != 1:
        # Partial, tiny or other-rate runs are for checking the code, or for a question of their own; only a
        # full run at the published rate and one API process replaces the published numbers.
        save(workdir / "suite.json", payload)
        for line in report.suite_section(payload):
            print(line)
        return
    save(report.SUITE_JSON, payload)
    charts.suite_chart(results, report.SUITE_CHART)
    print(f"[bench] wrote {report.write_report()} and {report.SUITE_CHART}", file=sys.stderr)


def rebuild() -> None:
    if report.SUITE_JSON.exists():
        results = [ScenarioResult.from_json(r) for r in load(report.SUITE_JSON)["results"]]
        charts.suite_chart(results, report.SUITE_CHART)
    for scale in report.SCALE_RUNS.values():
        if scale.json.exists():
            charts.scale_chart(load(scale.json), scale.chart)
    print(f"[bench] wrote {report.write_report()}", file=sys.stderr)


def main(argv: list[str]) -> None:
    if argv[:1] == ["_scenario"]:
        run_scenario_here(argv[1], Path(argv[2]), Path(argv[3]))
        return
    if argv[:1] == ["report"]:
        rebuild()
        return
    if argv[:1] == ["backfill"]:
        from bench import backfill

        backfill.main(argv[1:], _command(argv))
        return
    if argv[:1] == ["purge"]:
        from bench import purge

        purge.main(argv[1:], _command(argv))
        return
    if argv[:1] == ["profile"]:
        from bench import profile

        profile.main(argv[1:], _command(argv))
        return
    if argv[:1] == ["_profile-publish"]:
        from bench import profile

        profile.publish_child(Path(argv[1]), int(argv[2]))
        return
    if argv[:1] == ["_publish-lane"]:
        from bench import audit_scale

        home, bootstrap, members, seed, lane = argv[1:]
        audit_scale.publish_lane(Path(home), bootstrap, int(members), int(seed), int(lane))
        return
    if argv[:1] == ["_audit-phase"]:
        from bench import audit_scale

        audit_scale.run_phase(Path(argv[1]), argv[2], argv[3:])
        return
    if argv[:1] == ["audit-scale"]:
        from bench import audit_scale

        audit_scale.main(argv[1:], _command(argv))
        return
    if argv[:1] == ["read-model-growth"]:
        from bench import read_model_growth

        read_model_growth.main(argv[1:], _command(argv))
        return
    if argv[:1] == ["scale"]:
        from bench import scale

        scale.main(argv[1:], _command(argv))
        return
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 2 repetitions; does not publish")
    parser.add_argument("--only", help="comma-separated scenario ids or names, e.g. a,c or envelope")
    parser.add_argument(
        "--query-rate",
        type=float,
        default=DEFAULT_QUERY_RATE,
        help="requests/s of the query scenario (d); a run at another rate than 500 is not published",
    )
    parser.add_argument(
        "--api-workers",
        type=int,
        default=1,
        help="processes the query API runs in scenario d (SHAREHUB_API_WORKERS); not published unless 1",
    )
    args = parser.parse_args(argv)
    if args.query_rate <= 0:
        parser.error("--query-rate must be more than 0")
    if not 1 <= args.api_workers <= 64:
        parser.error("--api-workers must be 1 to 64")
    only = set(args.only.split(",")) if args.only else None
    suite(argv, args.quick, only, args.query_rate, args.api_workers)


if __name__ == "__main__":
    main(sys.argv[1:])
