"""The vocabulary of purposes and legal bases: only the operator changes it, agreements and datasets name its
terms once it holds them, a retired term is named by no new agreement while those that name it keep it,
and every refusal names the ids that are allowed and leaves the log as it was."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sharehub.errors import DuplicateId, InputError, LifecycleViolation, NotPermitted, UnknownReferenceError
from sharehub.gov import GovernanceService, fold
from sharehub.gov.log import MemoryLog
from sharehub.gov.vocabulary import allowed_purposes
from tests.gov_support import Clock, propose_tasks, seeded, signing_key
from tests.unit.test_gov_schema_releases import kept_releases, rewritten

MANAGEMENT = ("party-member-management", "Quản lý đảng viên", "Party member management")
STATISTICS = ("party-member-statistics", "Thống kê đảng viên", "Party member statistics")
#: The release of governance-event.avsc just before the vocabulary (schemas/history/governance-event/).
RELEASE_BEFORE_THE_VOCABULARY = "59d3fd756416f16d"
BASIS = ("regulation-384-art-5", "Quy định 384, Điều 5", "Regulation 384, Art. 5", "Regulation 384, Art. 5")


@pytest.fixture
def svc() -> GovernanceService:
    """The seeded hub with two purposes and a legal basis, and ``tasks`` shared for management only."""
    svc = seeded(Clock())
    svc.define_purpose("cpo", *MANAGEMENT)
    svc.define_purpose("cpo", *STATISTICS)
    svc.define_legal_basis("cpo", *BASIS)
    svc.declare_dataset("cpo", "tasks-2", "go", "internal", "task_id", purposes=[MANAGEMENT[0]])
    svc.register_schema("go", "tasks-2", svc.state.current_schema("tasks").raw)
    return svc


def propose(svc: GovernanceService, agreement_id: str = "mcst.tasks.9", **overrides: Any) -> None:
    terms = {"purpose": "", "purposes": [STATISTICS[0]], "legal_basis": BASIS[0], **overrides}
    propose_tasks(svc, agreement_id, **terms)


def refused(svc: GovernanceService, error: type[Exception], match: str, call: Any) -> None:
    """``call`` raises ``error`` (its message matching) and appends nothing to the log."""
    head = svc.state.head_sequence
    with pytest.raises(error, match=match):
        call()
    assert svc.state.head_sequence == head


def test_an_agreement_names_purposes_and_a_legal_basis_of_the_vocabulary(svc: GovernanceService) -> None:
    propose(svc, purposes=[MANAGEMENT[0], STATISTICS[0]])
    terms = svc.state.agreement("mcst.tasks.9").terms
    assert terms.purposes == (MANAGEMENT[0], STATISTICS[0])
    assert terms.purpose == f"{MANAGEMENT[0]}, {STATISTICS[0]}", "the text left out becomes the ids"
    assert terms.legal_basis == BASIS[0]
    assert svc.state.purposes_[MANAGEMENT[0]].label_vi == "Quản lý đảng viên"


def test_unknown_terms_are_refused_naming_the_ids_in_use(svc: GovernanceService) -> None:
    refused(svc, UnknownReferenceError, f"no purpose 'espionage'; in use: {MANAGEMENT[0]}, {STATISTICS[0]}",
            lambda: propose(svc, purposes=["espionage"]))  # fmt: skip
    refused(svc, UnknownReferenceError, f"no legal basis 'whim'; in use: {BASIS[0]}",
            lambda: propose(svc, legal_basis="whim"))  # fmt: skip
    refused(svc, InputError, "must not repeat", lambda: propose(svc, purposes=[MANAGEMENT[0]] * 2))


def test_once_the_vocabulary_holds_purposes_a_new_agreement_must_name_them(svc: GovernanceService) -> None:
    refused(svc, InputError, f"name its purposes by id.*in use: {MANAGEMENT[0]}, {STATISTICS[0]}",
            lambda: propose(svc, purpose="Follow the tasks", purposes=[]))  # fmt: skip


def test_an_agreement_names_only_purposes_its_dataset_may_be_shared_for(svc: GovernanceService) -> None:
    only_management = f"'tasks-2' may not be shared for {STATISTICS[0]}; it may be for: {MANAGEMENT[0]}"
    refused(svc, InputError, only_management, lambda: propose(svc, dataset="tasks-2"))
    propose(svc, dataset="tasks-2", purposes=[MANAGEMENT[0]])
    propose(svc, "mcst.tasks.10", purposes=[STATISTICS[0]])  # tasks names none: any purpose


def test_a_dataset_names_only_purposes_of_the_vocabulary(svc: GovernanceService) -> None:
    def declare() -> None:
        svc.declare_dataset("cpo", "tasks-3", "go", "internal", "task_id", purposes=["gossip"])

    refused(svc, UnknownReferenceError, "dataset 'tasks-3': no purpose 'gossip'", declare)


def test_a_retired_purpose_is_named_by_no_new_agreement_and_kept_by_those_that_name_it(
    svc: GovernanceService,
) -> None:
    propose(svc)
    svc.retire_purpose("cpo", STATISTICS[0], "merged into management")
    refused(svc, LifecycleViolation, f"purpose '{STATISTICS[0]}' is retired.*in use: {MANAGEMENT[0]}$",
            lambda: propose(svc, "mcst.tasks.10"))  # fmt: skip
    assert svc.state.agreement("mcst.tasks.9").terms.purposes == (STATISTICS[0],)
    svc.consent("go", "mcst.tasks.9")
    svc.approve("cpo", "mcst.tasks.9")  # its lifecycle goes on
    refused(
        svc, LifecycleViolation, "already retired", lambda: svc.retire_purpose("cpo", STATISTICS[0], "again")
    )
    refused(svc, DuplicateId, "ids are never reused", lambda: svc.define_purpose("cpo", *STATISTICS))
    svc.retire_legal_basis("cpo", BASIS[0], "replaced")
    refused(svc, LifecycleViolation, f"legal basis '{BASIS[0]}' is retired",
            lambda: propose(svc, "mcst.tasks.11", purposes=[MANAGEMENT[0]]))  # fmt: skip


def test_only_the_operator_changes_the_vocabulary(svc: GovernanceService) -> None:
    refused(svc, NotPermitted, "only the operator 'cpo' may define or retire a purpose; 'coc' asked",
            lambda: svc.define_purpose("coc", "surveillance", "Giám sát", "Surveillance"))  # fmt: skip
    refused(svc, NotPermitted, "may define or retire a legal basis",
            lambda: svc.retire_legal_basis("go", BASIS[0], "mine"))  # fmt: skip


@pytest.mark.parametrize(
    ("term", "match"),
    [
        (("Bad Id", "Nhãn", "Label"), "purpose id 'Bad Id'"),
        (("ab", "Nhãn", "Label"), "purpose id 'ab': 3-63 characters"),
        (("ok-id", " ", "Label"), "label_vi: 1 to 200"),
        (("ok-id", "Nhãn", "x" * 201), "label_en: 1 to 200"),
    ],
)
def test_a_malformed_term_is_refused(svc: GovernanceService, term: tuple[str, str, str], match: str) -> None:
    refused(svc, InputError, match, lambda: svc.define_purpose("cpo", *term))


def test_agreements_of_free_text_purpose_stay_valid_and_replay_to_the_same_state() -> None:
    """A log written before the vocabulary (free-text purposes) replays, and goes on with the vocabulary."""
    svc = seeded(Clock())
    propose_tasks(svc, "mcst.tasks.1")  # free text, no vocabulary yet
    svc.define_purpose("cpo", *MANAGEMENT)
    svc.define_legal_basis("cpo", *BASIS)
    propose(svc, "mcst.tasks.2", purposes=[MANAGEMENT[0]])
    old = svc.state.agreement("mcst.tasks.1").terms
    assert old.purposes == () and old.purpose == "Follow the resolution tasks of the ministry"
    replayed = fold(svc._log.read_all(), svc.state.trust)
    assert replayed.state_hash() == svc.state.state_hash()
    assert replayed.dump()["vocabulary"]["purposes"][0]["label_vi"] == "Quản lý đảng viên"


def test_a_state_without_vocabulary_dumps_as_before() -> None:
    """Evidence packs hold state hashes: a hub that never defined a term keeps the dump it had."""
    svc = seeded(Clock())
    propose_tasks(svc)
    dump = svc.state.dump()
    assert "vocabulary" not in dump
    assert "purposes" not in dump["agreements"]["mcst.tasks.1"][0]["terms"]


def test_a_log_written_before_the_vocabulary_folds_and_goes_on_with_it() -> None:
    """Events of the release before the vocabulary (no purposes anywhere) read into today's form: their
    agreements are of free-text purpose (any stated purpose is taken), and the log goes on with terms."""
    key = signing_key()
    svc = seeded(Clock(), key)
    propose_tasks(svc, "mcst.tasks.1")
    before = kept_releases()[f"{RELEASE_BEFORE_THE_VOCABULARY}.avsc"]
    assert "PurposeDefined" not in json.dumps(before.raw)
    old = rewritten(svc._log.read_all(), before, key)
    state = fold(old, svc.state.trust, svc.state.topic_prefix)
    assert {**state.dump(), "head": None} == {**svc.state.dump(), "head": None}
    terms = state.agreement("mcst.tasks.1").terms
    assert terms.purposes == () and terms.purpose == "Follow the resolution tasks of the ministry"
    assert allowed_purposes(state.agreement("mcst.tasks.1").view()) is None

    going_on = GovernanceService(state, key, MemoryLog(old), clock=Clock(), signers=svc.signers)
    going_on.define_purpose("cpo", *MANAGEMENT)
    going_on.define_legal_basis("cpo", *BASIS)
    propose(going_on, "mcst.tasks.2", purposes=[MANAGEMENT[0]])
    assert allowed_purposes(going_on.state.agreement("mcst.tasks.2").view()) == (MANAGEMENT[0],)
    assert (
        fold(going_on._log.read_all(), state.trust, state.topic_prefix).state_hash()
        == going_on.state.state_hash()
    )
