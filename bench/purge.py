"""``python -m bench purge``: how long an agreement's end takes to reach the consumer (R5).

A hub with N party members projected by the real worker into three consumers' read models (Dong Thap,
Lang Son, Thai Nguyen) and the real query API. Then, one consumer at a time, governance suspends (or
revokes) its agreement on the log, and the clock runs until

- the query API refuses the consumer's next request (403), polled every 20 ms, and
- the worker has purged the consumer's rows from its read model (count 0), polled every 20 ms.

Both are measured from the moment the governance event is on the broker. Results go to
``bench/results/purge.json`` and a section of ``BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import statistics
import subprocess
import sys
import time
from typing import Any

import httpx2

from bench import machine, report
from bench.environment import BENCH_HOME, DATASET, OWNER, broker, hub_env, new_hub
from bench.load import query_api, stop_group, wait_for
from bench.model import save
from projections.read_model import ReadModelStore
from services.governance_bootstrap import issue_credential
from services.hub import Hub
from tooling.synthetic import generate_party_members

RESULTS = report.PURGE_JSON
#: (consumer, how its agreement ends)
ENDINGS = [("dongthap-ppc", "suspend"), ("langson-ppc", "revoke"), ("thainguyen-ppc", "suspend")]


def _grant_thai_nguyen(hub: Hub) -> None:
    with hub.governing() as gov:
        agreement = "thainguyen-ppc.party-members.bench"
        gov.propose(
            "thainguyen-ppc", agreement, "thainguyen-ppc", DATASET, ["member_id", "province_code", "status"],
            "", "regulation-384-art-5", purposes=["party-member-statistics"],
        )  # fmt: skip
        gov.consent("coc", agreement)
        gov.approve("cpo", agreement)
        gov.approve("op", agreement)


def _refuses(client: httpx2.Client, path: str, auth: dict[str, str], purpose: str) -> bool:
    return _status(client, path, auth, purpose) == 403


def _empty(store: ReadModelStore) -> bool:
    return store.count(DATASET) == 0


def _status(client: httpx2.Client, path: str, auth: dict[str, str], purpose: str) -> int:
    """The API's status for one read, stating ``purpose`` (one the consumer's agreement names)."""
    return int(client.get(path, headers=auth, params={"limit": 1, "purpose": purpose}).status_code)


def run(members: int) -> dict[str, Any]:
    workdir = BENCH_HOME / "purge"
    with broker() as bootstrap:
        hub = new_hub(workdir / "hub", bootstrap)
        _grant_thai_nguyen(hub)
        publisher = hub.publisher(OWNER, DATASET)
        publisher.publish_records(generate_party_members(members, seed=384))
        publisher.close()
        env = hub_env(hub)
        log = (workdir / "projector.log").open("ab")
        worker = subprocess.Popen(
            [sys.executable, "-m", "services", "project"], env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        stores = {c: hub.store(c) for c, _ in ENDINGS}
        try:
            wait_for(lambda: all(s.count(DATASET) == members for s in stores.values()), 600, "projection")
            tokens = {c: issue_credential(hub, c) for c, _ in ENDINGS}
            with (
                query_api(env, workdir / "api.log") as server,
                httpx2.Client(base_url=server.base, verify=server.tls) as client,
            ):
                runs: list[dict[str, Any]] = []
                for consumer, ending in ENDINGS:
                    path = f"/v1/consumers/{consumer}/datasets/{DATASET}/records"
                    auth = {"Authorization": f"Bearer {tokens[consumer]}"}
                    granted = hub.governance_state(refresh=True).active_agreement(
                        consumer, DATASET, dt.datetime.now(dt.UTC)
                    )
                    assert granted is not None and granted.purposes
                    purpose = granted.purposes[0]
                    if _status(client, path, auth, purpose) != 200:
                        raise RuntimeError(f"{consumer} cannot read before its agreement ends")
                    with hub.governing() as gov:
                        agreement = gov.state.active_agreement(consumer, DATASET, dt.datetime.now(dt.UTC))
                        assert agreement is not None
                        getattr(gov, ending)("cpo", agreement.id, "benchmark")
                    logged = time.monotonic()  # the event is on the broker (acks=all, flushed)
                    refused = wait_for(
                        functools.partial(_refuses, client, path, auth, purpose),
                        30,
                        f"the API refusing {consumer}",
                    )
                    purged = wait_for(functools.partial(_empty, stores[consumer]), 60, f"{consumer}'s purge")
                    runs.append(
                        {
                            "consumer": consumer,
                            "ending": ending,
                            "rows": members,
                            "api_refuses_after_s": round(refused - logged, 3),
                            "rows_purged_after_s": round(purged - logged, 3),
                        }
                    )
                    print(f"[purge] {runs[-1]}", file=sys.stderr)
        finally:
            stop_group(worker)
            hub.close()
    return {
        "members": members,
        "runs": runs,
        "api_refuses_median_s": statistics.median(float(r["api_refuses_after_s"]) for r in runs),
        "rows_purged_median_s": statistics.median(float(r["rows_purged_after_s"]) for r in runs),
        "rows_purged_max_s": max(float(r["rows_purged_after_s"]) for r in runs),
    }


def main(argv: list[str], command: str) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench purge", description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=20_000)
    args = parser.parse_args(argv)
    result = run(args.members)
    payload = {
        **machine.run_header(command),
        **result,
    }
    save(RESULTS, payload)
    print(f"[purge] wrote {RESULTS}; {report.write_report()}", file=sys.stderr)
