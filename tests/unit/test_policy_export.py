"""Governance exported as ODRL policies and a DCAT catalog reads back, through a JSON-LD processor (rdflib)
that knows nothing of sharehub, as the same agreements and datasets: the standard IRIs carry the terms."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rdflib
from rdflib.collection import Collection
from rdflib.namespace import DCAT, DCTERMS, RDF

from services.governance_bootstrap import load
from services.hub import Hub
from services.policy_export import SHAREHUB, export
from sharehub.errors import InputError
from sharehub.gov.log import MemoryLog
from sharehub.gov.state import GovState
from sharehub.settings import Settings
from tests.conftest import demo_spec

# rdflib's own JSON-LD parser still builds a ConjunctiveGraph inside, and warns about it.
pytestmark = pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning")
ODRL = rdflib.Namespace("http://www.w3.org/ns/odrl/2/")
OURS = rdflib.Namespace(SHAREHUB)


@pytest.fixture(scope="module")
def governance() -> Iterator[GovState]:
    home = Path(tempfile.mkdtemp()) / "home"
    hub = Hub(
        Settings(home=home, kafka_bootstrap="127.0.0.1:9", master_key=None, read_model_url=None),
        log=MemoryLog(),
    )
    load(hub.governance_desk(), demo_spec(), topics=False)
    with hub.governing() as gov:
        fields = ("resolution_number", "task_id", "task_title", "status")
        gov.propose("mcst-pc", "mcst.tasks.1", "mcst-pc", "resolution-tasks", fields, "Follow culture tasks",
                    "Regulation 384", row_filter='status != "COMPLETED"')  # fmt: skip
        gov.consent("cpo", "mcst.tasks.1")
        gov.approve("op", "mcst.tasks.1")
        gov.suspend("cpo", "mcst.tasks.1", "review")
        gov.propose(
            "mcst-pc", "mcst.tasks.2", "mcst-pc", "resolution-tasks", fields, "Waits", "Regulation 384"
        )
    yield hub.governance
    hub.close()


def graph_of(document: dict[str, Any]) -> rdflib.Graph:
    """The document as a JSON-LD processor reads it (no network: its context is inline)."""
    return rdflib.Graph().parse(data=json.dumps(document), format="json-ld")


def local_id(iri: rdflib.term.Node) -> str:
    return str(iri).rsplit(":", 1)[-1]


def policies_read_back(graph: rdflib.Graph) -> dict[str, dict[str, Any]]:
    """Each ODRL agreement in ``graph``, as the terms it states."""
    found: dict[str, dict[str, Any]] = {}
    for policy in graph.subjects(RDF.type, ODRL.Agreement):
        (permission,) = graph.objects(policy, ODRL.permission)
        assert graph.value(permission, ODRL.action) == ODRL.use
        constraints = [
            (
                graph.value(c, ODRL.leftOperand),
                graph.value(c, ODRL.operator),
                graph.value(c, ODRL.rightOperand),
            )
            for c in graph.objects(permission, ODRL.constraint)
        ]
        times = {str(op): value.toPython() for left, op, value in constraints if left == ODRL.dateTime}
        (purpose,) = [str(value) for left, op, value in constraints if left == ODRL.purpose and op == ODRL.eq]
        fields = Collection(graph, graph.value(policy, OURS.field))
        found[local_id(policy)] = {
            "owner": local_id(graph.value(policy, ODRL.assigner)),
            "consumer": local_id(graph.value(policy, ODRL.assignee)),
            "dataset": local_id(graph.value(permission, ODRL.target)),
            "purpose": purpose,
            "valid_from": times[str(ODRL.gteq)],
            "valid_until": times.get(str(ODRL.lt)),
            "fields": tuple(str(f) for f in fields),
            "row_filter": (lambda v: None if v is None else str(v))(graph.value(policy, OURS.rowFilter)),
            "legal_basis": str(graph.value(policy, OURS.legalBasis)),
            "state": str(graph.value(policy, OURS.state)),
        }
    return found


def test_every_agreement_reads_back_from_its_odrl_policy(governance: GovState) -> None:
    now = dt.datetime.now(dt.UTC)
    read = policies_read_back(graph_of(export(governance, "odrl", at=now)))
    expected = {}
    for agreement in governance.agreements():
        record = governance.agreement(agreement.id)
        t = record.terms
        expected[t.id] = {
            "owner": record.owner, "consumer": t.consumer, "dataset": t.dataset, "purpose": t.purpose,
            "valid_from": t.valid_from, "valid_until": t.valid_until, "fields": t.fields,
            "row_filter": t.row_filter, "legal_basis": t.legal_basis, "state": record.status_at(now),
        }  # fmt: skip
    assert read == expected
    assert read["mcst.tasks.1"]["row_filter"] == 'status != "COMPLETED"'
    assert read["mcst.tasks.1"]["state"] == "suspended"
    assert "mcst.tasks.2" not in read, "a proposal still waiting grants nothing"


def test_an_agreements_state_is_as_it_stood_at_the_time_asked(governance: GovState) -> None:
    agreement = governance.agreements()[0]
    valid_until = governance.agreement(agreement.id).terms.valid_until
    assert valid_until is not None
    later = policies_read_back(graph_of(export(governance, "odrl", at=valid_until)))
    assert later[agreement.id]["state"] == "expired"


def test_every_dataset_reads_back_from_the_dcat_catalog(governance: GovState) -> None:
    graph = graph_of(export(governance, "dcat"))
    (catalog,) = graph.subjects(RDF.type, DCAT.Catalog)
    datasets = {local_id(d): d for d in graph.objects(catalog, DCAT.dataset)}
    assert set(datasets) == set(governance.datasets_)
    for dataset_id, node in datasets.items():
        record = governance.datasets_[dataset_id]
        assert (node, RDF.type, DCAT.Dataset) in graph
        assert local_id(graph.value(node, DCTERMS.publisher)) == record.owner
        assert str(graph.value(node, DCTERMS.accessRights)) == record.classification
        assert tuple(str(f) for f in Collection(graph, graph.value(node, OURS.field))) == tuple(
            record.schemas[-1].fields
        )
        (distribution,) = graph.objects(node, DCAT.distribution)
        assert str(graph.value(distribution, OURS.topic)) == governance.dataset(dataset_id).topic
        policies = {local_id(p) for p in graph.objects(node, ODRL.hasPolicy)}
        assert policies == {a.id for a in governance.agreements() if a.dataset == dataset_id}
    agencies = {
        local_id(a) for a in graph.subjects(RDF.type, rdflib.URIRef("http://xmlns.com/foaf/0.1/Agent"))
    }
    assert agencies == set(governance.agencies_)


def test_identifiers_take_the_base_iri_given(governance: GovState) -> None:
    graph = graph_of(export(governance, "odrl", base_iri="https://hub.example.gov.vn/id/"))
    policies = list(graph.subjects(RDF.type, ODRL.Agreement))
    assert policies and all(str(p).startswith("https://hub.example.gov.vn/id/agreement:") for p in policies)


def test_an_unknown_format_is_refused(governance: GovState) -> None:
    with pytest.raises(InputError, match="odrl, dcat"):
        export(governance, "xml")


def test_an_agreement_naming_purposes_is_constrained_by_them_with_their_labels() -> None:
    """Purposes of the vocabulary are IRIs (``purpose isAnyOf``), each a SKOS concept in vi and en."""
    home = Path(tempfile.mkdtemp()) / "home"
    hub = Hub(
        Settings(home=home, kafka_bootstrap="127.0.0.1:9", master_key=None, read_model_url=None),
        log=MemoryLog(),
    )
    load(hub.governance_desk(), demo_spec(vocabulary=True), topics=False)
    graph = graph_of(export(hub.governance, "odrl"))
    hub.close()
    SKOS = rdflib.Namespace("http://www.w3.org/2004/02/skos/core#")
    (policy,) = [
        p for p in graph.subjects(RDF.type, ODRL.Agreement) if local_id(p) == "langson-ppc.party-members.1"
    ]
    (permission,) = graph.objects(policy, ODRL.permission)
    (constraint,) = [c for c in graph.objects(permission, ODRL.constraint)
                     if graph.value(c, ODRL.leftOperand) == ODRL.purpose]  # fmt: skip
    assert graph.value(constraint, ODRL.operator) == ODRL.isAnyOf
    (purpose,) = graph.objects(constraint, ODRL.rightOperand)
    assert local_id(purpose) == "party-member-statistics"
    assert (purpose, RDF.type, SKOS.Concept) in graph
    labels = {label.language: str(label) for label in graph.objects(purpose, SKOS.prefLabel)}
    assert labels == {"vi": "Thống kê đảng viên", "en": "Party member statistics"}
