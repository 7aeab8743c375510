"""``sharehub gov export`` against the real broker: the governance log read back as ODRL policies and a DCAT
catalog that a JSON-LD processor (rdflib) reads as the same agreements and datasets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.hub import Hub
from tests.kafka_helpers import sharehub
from tests.unit.test_policy_export import ODRL, graph_of, local_id, policies_read_back

pytestmark = pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning")


def test_the_command_line_exports_the_logs_agreements_and_datasets(hub: Hub, tmp_path: Path) -> None:
    governance = hub.governance_state(refresh=True)
    out = tmp_path / "policies.jsonld"
    done = sharehub(hub, "gov", "export", "--format", "odrl", "--out", str(out))
    assert done.returncode == 0, done.stderr
    policies = policies_read_back(graph_of(json.loads(out.read_text())))
    assert set(policies) == {a.id for a in governance.agreements()}
    for agreement in governance.agreements():
        assert policies[agreement.id]["consumer"] == agreement.consumer
        assert policies[agreement.id]["dataset"] == agreement.dataset

    catalog = sharehub(hub, "gov", "export", "--format", "dcat")
    assert catalog.returncode == 0, catalog.stderr
    graph = graph_of(json.loads(catalog.stdout))
    datasets = {local_id(d) for d, _, _ in graph.triples((None, ODRL.hasPolicy, None))}
    assert datasets == {a.dataset for a in governance.agreements()}


def test_an_unknown_format_is_a_clear_refusal(hub: Hub) -> None:
    done = sharehub(hub, "gov", "export", "--format", "xml")
    assert done.returncode == 2
    assert "one of odrl, dcat" in done.stderr and "Traceback" not in done.stderr
