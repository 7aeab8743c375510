"""Governance in the standard vocabularies data-space tooling reads: each agreement as an ODRL policy, each
dataset as a DCAT entry, as JSON-LD.

ODRL (W3C Open Digital Rights Language 2.2): an agreement is an ``odrl:Agreement`` whose assigner is the
dataset's owner and assignee the consumer, with one permission to ``use`` the dataset, constrained by the
agreement's purpose and its validity (``dateTime`` from, and until when it ends). What ODRL has no term for —
the fields granted, the row filter, the legal basis, the approvals, the agreement's state now — is said in the
hub's own namespace beside it. DCAT 3 (W3C Data Catalog Vocabulary): the hub is a ``dcat:Catalog``; each
dataset a ``dcat:Dataset`` published by its owner, with its classification as access rights, its fields, and a
distribution naming its topic and the Avro format; ``odrl:hasPolicy`` links it to its agreements' policies.

Every document carries its whole ``@context`` inline, so it expands to the same IRIs with no network (an
isolated network has no route to w3.org). Identifiers are URNs under the hub's topic prefix
(``urn:sharehub:<prefix>:agreement:<id>``) unless a base IRI is given.

An agreement that names purposes of governance's vocabulary is constrained by them (``purpose isAnyOf``
their IRIs), and each purpose of the vocabulary is in the ODRL document as a ``skos:Concept`` with its
Vietnamese and English labels; an agreement of free-text purpose keeps ``purpose eq`` its text.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sharehub.errors import InputError
from sharehub.gov.state import GovState
from sharehub.gov.vocabulary import PurposeRecord

FORMATS = ("odrl", "dcat")

ODRL = "http://www.w3.org/ns/odrl/2/"
DCAT = "http://www.w3.org/ns/dcat#"
DCT = "http://purl.org/dc/terms/"
FOAF = "http://xmlns.com/foaf/0.1/"
XSD = "http://www.w3.org/2001/XMLSchema#"
SKOS = "http://www.w3.org/2004/02/skos/core#"
SHAREHUB = "urn:sharehub:ns:"

#: The terms the documents use, each bound to its vocabulary's IRI (JSON-LD 1.1).
CONTEXT: dict[str, Any] = {
    "odrl": ODRL,
    "dcat": DCAT,
    "dct": DCT,
    "foaf": FOAF,
    "xsd": XSD,
    "skos": SKOS,
    "sharehub": SHAREHUB,
    "uid": "@id",
    "type": "@type",
    "permission": {"@id": "odrl:permission", "@container": "@set"},
    "assigner": {"@id": "odrl:assigner", "@type": "@id"},
    "assignee": {"@id": "odrl:assignee", "@type": "@id"},
    "target": {"@id": "odrl:target", "@type": "@id"},
    "action": {"@id": "odrl:action", "@type": "@vocab"},
    "constraint": {"@id": "odrl:constraint", "@container": "@set"},
    "leftOperand": {"@id": "odrl:leftOperand", "@type": "@vocab"},
    "operator": {"@id": "odrl:operator", "@type": "@vocab"},
    "rightOperand": {"@id": "odrl:rightOperand"},
    "hasPolicy": {"@id": "odrl:hasPolicy", "@type": "@id", "@container": "@set"},
    "Agreement": "odrl:Agreement",
    "use": "odrl:use",
    "purpose": "odrl:purpose",
    "dateTime": "odrl:dateTime",
    "eq": "odrl:eq",
    "isAnyOf": "odrl:isAnyOf",
    "Concept": "skos:Concept",
    "prefLabel": {"@id": "skos:prefLabel", "@container": "@language"},
    "retired": {"@id": "sharehub:retired", "@type": "xsd:dateTime"},
    "gteq": "odrl:gteq",
    "lt": "odrl:lt",
    "Catalog": "dcat:Catalog",
    "Dataset": "dcat:Dataset",
    "Distribution": "dcat:Distribution",
    "dataset": {"@id": "dcat:dataset", "@container": "@set"},
    "distribution": {"@id": "dcat:distribution", "@container": "@set"},
    "identifier": "dct:identifier",
    "title": "dct:title",
    "description": "dct:description",
    "publisher": {"@id": "dct:publisher", "@type": "@id"},
    "accessRights": "dct:accessRights",
    "format": "dct:format",
    "Agent": "foaf:Agent",
    "name": "foaf:name",
    "agent": {"@id": "sharehub:agent", "@container": "@set"},
    "fields": {"@id": "sharehub:field", "@container": "@list"},
    "rowFilter": "sharehub:rowFilter",
    "legalBasis": "sharehub:legalBasis",
    "state": "sharehub:state",
    "consentedBy": {"@id": "sharehub:consentedBy", "@type": "@id"},
    "approvedBy": {"@id": "sharehub:approvedBy", "@type": "@id", "@container": "@set"},
    "topic": "sharehub:topic",
    "keyField": "sharehub:keyField",
    "classification": "sharehub:classification",
    "retentionMs": {"@id": "sharehub:retentionMs", "@type": "xsd:long"},
    "clearance": "sharehub:clearance",
    "agencyKind": "sharehub:agencyKind",
}
AVRO_MEDIA_TYPE = "application/avro"


class Identifiers:
    """The IRI of each governed thing of one hub."""

    def __init__(self, governance: GovState, base_iri: str | None = None) -> None:
        self.base = base_iri or f"urn:sharehub:{governance.topic_prefix}:"

    def agency(self, agency_id: str) -> str:
        return f"{self.base}agency:{agency_id}"

    def dataset(self, dataset_id: str) -> str:
        return f"{self.base}dataset:{dataset_id}"

    def agreement(self, agreement_id: str) -> str:
        return f"{self.base}agreement:{agreement_id}"

    def purpose(self, purpose_id: str) -> str:
        return f"{self.base}purpose:{purpose_id}"

    def catalog(self) -> str:
        return f"{self.base}catalog"


def export(
    governance: GovState, fmt: str, *, base_iri: str | None = None, at: dt.datetime | None = None
) -> dict[str, Any]:
    """The JSON-LD document of ``governance`` in ``fmt``; agreement states as they stand at ``at`` (now)."""
    ids = Identifiers(governance, base_iri)
    at = at or dt.datetime.now(dt.UTC)
    if fmt == "odrl":
        return {
            "@context": CONTEXT,
            "@graph": [
                *(_policy(governance, ids, a, at) for a in _agreements(governance)),
                *(_purpose(ids, governance.purposes_[p]) for p in sorted(governance.purposes_)),
            ],
        }
    if fmt == "dcat":
        return {"@context": CONTEXT, **_catalog(governance, ids)}
    raise InputError(f"unknown export format {fmt!r}: one of {', '.join(FORMATS)}")


def _agreements(governance: GovState) -> list[str]:
    """Agreements that took effect at some time (a proposal still waiting grants nothing yet)."""
    return [agreement.id for agreement in governance.agreements()]


def _policy(governance: GovState, ids: Identifiers, agreement_id: str, at: dt.datetime) -> dict[str, Any]:
    record = governance.agreement(agreement_id)
    terms = record.terms
    purposes = [{"@id": ids.purpose(p)} for p in terms.purposes]
    constraints: list[dict[str, Any]] = [
        {"leftOperand": "purpose", "operator": "isAnyOf", "rightOperand": purposes}
        if purposes
        else {"leftOperand": "purpose", "operator": "eq", "rightOperand": terms.purpose},
        {"leftOperand": "dateTime", "operator": "gteq", "rightOperand": _date_time(terms.valid_from)},
    ]
    if terms.valid_until is not None:
        constraints.append(
            {"leftOperand": "dateTime", "operator": "lt", "rightOperand": _date_time(terms.valid_until)}
        )
    policy: dict[str, Any] = {
        "uid": ids.agreement(terms.id),
        "type": "Agreement",
        "assigner": ids.agency(record.owner),
        "assignee": ids.agency(terms.consumer),
        "permission": [{"target": ids.dataset(terms.dataset), "action": "use", "constraint": constraints}],
        "fields": list(terms.fields),
        "legalBasis": terms.legal_basis,
        "state": record.status_at(at),
        "approvedBy": [ids.agency(a) for a in record.approvals],
    }
    if terms.row_filter is not None:
        policy["rowFilter"] = terms.row_filter
    if record.consented_by is not None:
        policy["consentedBy"] = ids.agency(record.consented_by)
    return policy


def _purpose(ids: Identifiers, purpose: PurposeRecord) -> dict[str, Any]:
    concept: dict[str, Any] = {
        "uid": ids.purpose(purpose.id),
        "type": "Concept",
        "identifier": purpose.id,
        "prefLabel": {"vi": purpose.label_vi, "en": purpose.label_en},
    }
    if purpose.retired_at is not None:
        concept["retired"] = purpose.retired_at.astimezone(dt.UTC).isoformat()
    return concept


def _catalog(governance: GovState, ids: Identifiers) -> dict[str, Any]:
    policies: dict[str, list[str]] = {}
    for agreement in governance.agreements():
        policies.setdefault(agreement.dataset, []).append(ids.agreement(agreement.id))
    return {
        "uid": ids.catalog(),
        "type": "Catalog",
        "title": f"sharehub {governance.topic_prefix}",
        "dataset": [_dataset(governance, ids, d, policies.get(d, [])) for d in sorted(governance.datasets_)],
        "agent": [_agent(governance, ids, a) for a in sorted(governance.agencies_)],
    }


def _dataset(governance: GovState, ids: Identifiers, dataset_id: str, policies: list[str]) -> dict[str, Any]:
    record = governance.datasets_[dataset_id]
    view = governance.dataset(dataset_id)
    latest = record.schemas[-1] if record.schemas else None
    return {
        "uid": ids.dataset(dataset_id),
        "type": "Dataset",
        "identifier": dataset_id,
        "title": dataset_id,
        "description": record.description,
        "publisher": ids.agency(record.owner),
        "accessRights": record.classification,
        "classification": record.classification,
        "keyField": record.key_field,
        "retentionMs": record.retention_ms,
        "fields": list(latest.fields) if latest is not None else [],
        "distribution": [{"type": "Distribution", "format": AVRO_MEDIA_TYPE, "topic": view.topic}],
        "hasPolicy": policies,
    }


def _agent(governance: GovState, ids: Identifiers, agency_id: str) -> dict[str, Any]:
    agency = governance.agencies_[agency_id]
    return {
        "uid": ids.agency(agency_id),
        "type": "Agent",
        "identifier": agency_id,
        "name": agency.name,
        "agencyKind": agency.kind,
        "clearance": agency.clearance,
    }


def _date_time(at: dt.datetime) -> dict[str, str]:
    return {"@value": at.astimezone(dt.UTC).isoformat(), "@type": "xsd:dateTime"}
