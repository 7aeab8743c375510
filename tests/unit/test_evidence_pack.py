"""Evidence packs, offline: one small pack of a demo hub (its governance log in memory, events sealed by the
owner, a checkpoint, access records), built once; it verifies against the hub's anchor with no broker, and
any changed byte, any re-signing by another key and any input that is no pack fails with a clear finding or
error, never a traceback."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from services.cli import hub_commands
from services.evidence_gather import gather
from services.governance_bootstrap import load
from services.hub import Hub
from sharehub import evidence_pack
from sharehub.access_records import seal_access
from sharehub.chain import GENESIS, ChainHead
from sharehub.checkpoints import seal_checkpoint
from sharehub.envelope import parse
from sharehub.errors import PackInvalid
from sharehub.evidence_check import Verdict, seal_pack, verify_pack
from sharehub.evidence_pack import Evidence, Scope, canonical_zip, read_members, trust_fingerprint
from sharehub.gov.log import MemoryLog
from sharehub.kafka import Record
from sharehub.settings import Settings
from tests.conftest import demo_spec
from tests.unit.test_avro import member
from tests.unit.test_projector import messages

CONSUMER = "dongthap-ppc"
START = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)


@dataclass(frozen=True)
class Built:
    hub: Hub
    evidence: Evidence
    data: bytes
    anchor: str


def _hub(home: Path) -> Hub:
    settings = Settings(home=home, kafka_bootstrap="127.0.0.1:9", master_key=None, read_model_url=None)
    hub = Hub(settings, log=MemoryLog())
    load(hub.governance_desk(), demo_spec(), topics=False)
    return hub


def _topics(hub: Hub) -> dict[str, list[Record]]:
    """A small log: governance, four events of one lane (at START+1h … +4h), a checkpoint of the fourth,
    and access records of two consumers."""
    state = hub.governance
    members = [member(member_id=f"PM{i:010d}") for i in range(1, 5)]
    events = messages(hub, members, occurred=[START + n * HOUR for n in range(1, 5)])
    head = ChainHead(4, parse(events[-1].value).hash)
    checkpoint = seal_checkpoint(hub.keys.signing_key("coc"), "coc", "party-members", 0, head)
    operator, chain, access = hub.keys.signing_key(state.operator), GENESIS, []
    for n, consumer in enumerate([CONSUMER, "langson-ppc", CONSUMER]):
        fields = {"request_id": f"r{n}", "consumer": consumer, "dataset": "party-members", "agreement": None,
                  "agreement_version": None, "purpose": "a check", "operation": "list_records",
                  "filter": None, "as_of": None, "fields_returned": ["member_id"], "record_refs": [],
                  "at": START + 2 * HOUR}  # fmt: skip
        raw, chain = seal_access(fields, instance="api-1", head=chain, signer=operator)
        access.append(Record(state.access_log_topic, 0, n, b"api-1", raw, 0))
    return {
        state.governance_topic: [
            Record(state.governance_topic, 0, i, None, v, 0) for i, v in enumerate(hub.log.read_all())
        ],  # fmt: skip
        state.dataset("party-members").topic: [
            Record(m.topic, 0, m.offset, m.key, m.value, 0) for m in events
        ],
        state.checkpoint_topic("coc"): [Record(state.checkpoint_topic("coc"), 0, 0, None, checkpoint, 0)],
        state.access_log_topic: access,
    }


def _evidence(hub: Hub, scope: Scope) -> Evidence:
    topics = _topics(hub)
    anchors = hub.anchors
    return gather(lambda topic: topics.get(topic, []), anchors, scope)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    hub = _hub(tmp_path_factory.mktemp("pack") / "home")
    # Events 2 and 3 are in range; event 4 links them to the checkpoint.
    evidence = _evidence(
        hub, Scope(CONSUMER, None, None, START + 90 * dt.timedelta(minutes=1), START + 3.5 * HOUR)
    )
    yield Built(hub, evidence, seal_pack(evidence), trust_fingerprint(hub.anchors))
    hub.close()


def _verified(data: bytes, anchor: str) -> Verdict | PackInvalid:
    try:
        return verify_pack(data, anchor)[1]
    except PackInvalid as exc:
        return exc


def test_a_pack_verifies_offline_against_the_hubs_anchor(built: Built) -> None:
    _, verdict = verify_pack(built.data, built.anchor)
    assert verdict.findings == []
    counts = {kind: (t.records, t.verified) for kind, t in verdict.tallies.items()}
    governance = len(built.hub.log.read_all())
    assert counts == {"governance": (governance, governance), "events": (3, 3), "checkpoints": (1, 1),
                      "access-log": (2, 2)}  # fmt: skip
    assert (verdict.selected, verdict.covered) == (2, 2)
    assert [r.selected for r in built.evidence.events] == [True, True, False]
    assert canonical_zip(list(read_members(built.data).items())) == built.data


def test_verify_pack_prints_a_summary_and_exits_0_with_no_broker(built: Built, tmp_path: Path) -> None:
    pack = tmp_path / "pack.zip"
    pack.write_bytes(built.data)
    done = _verify_pack_command(tmp_path, str(pack), "--anchor", built.anchor)
    assert done.exit_code == 0, done.output
    assert "audit verify-pack" in done.output and "2 covered by a signed checkpoint" in done.output


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.data(), mask=st.integers(1, 255))
def test_any_changed_byte_fails(built: Built, position: st.DataObject, mask: int) -> None:
    at = position.draw(st.integers(0, len(built.data) - 1))
    changed = bytearray(built.data)
    changed[at] ^= mask
    outcome = _verified(bytes(changed), built.anchor)
    assert isinstance(outcome, PackInvalid) or outcome.findings, f"byte {at} changed and nothing failed"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(member=st.sampled_from(evidence_pack.MEMBERS), position=st.data(), mask=st.integers(1, 255))
def test_a_changed_byte_inside_a_member_with_its_crc_made_right_fails(
    built: Built, member: str, position: st.DataObject, mask: int
) -> None:
    """Past the CRCs (the zip rewritten canonically around the changed member): each member's own checks."""
    members = read_members(built.data)
    content = bytearray(members[member])
    at = position.draw(st.integers(0, len(content) - 1))
    content[at] ^= mask
    members[member] = bytes(content)
    outcome = _verified(canonical_zip(list(members.items())), built.anchor)
    assert isinstance(outcome, PackInvalid) or outcome.findings, f"{member} byte {at} changed, nothing failed"


def test_a_pack_re_signed_by_another_operator_fails_against_the_auditors_anchor(
    built: Built, tmp_path: Path
) -> None:
    forger = _hub(tmp_path / "forger")
    try:
        scope = built.evidence.scope
        forged = seal_pack(_evidence(forger, scope))
        assert verify_pack(forged, trust_fingerprint(forger.anchors))[1].ok  # whole in itself ...
        reasons = {f.reason for f in verify_pack(forged, built.anchor)[1].findings}
        assert reasons == {"anchor_mismatch"}  # ... but not from the auditor's anchor
        # Keeping the real trust in pack.json: the forger's governance no longer verifies.
        dressed = replace(_evidence(forger, scope), trust=built.hub.anchors)
        findings = verify_pack(seal_pack(dressed), built.anchor)[1].findings
        governance = {f.reason for f in findings if f.kind == "governance"}
        assert governance and governance <= {"bad_signature", "unknown_signer"}  # the same key ids: bad
        assert {f.kind for f in findings} >= {"governance", "events", "checkpoints", "access-log"}
    finally:
        forger.close()


def test_a_header_change_no_crc_covers_is_found(built: Built) -> None:
    members = read_members(built.data)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, (2026, 1, 1, 0, 0, 0)), data)  # another time
    verdict = _verified(out.getvalue(), built.anchor)
    assert isinstance(verdict, Verdict) and {f.reason for f in verdict.findings} == {"not_canonical"}


def test_a_rewritten_member_with_its_crc_is_found(built: Built) -> None:
    members = read_members(built.data)
    members["report.txt"] = members["report.txt"].replace(b"findings: none", b"findings: nine")
    verdict = _verified(canonical_zip(list(members.items())), built.anchor)
    assert isinstance(verdict, Verdict)
    assert {f.reason for f in verdict.findings} == {"manifest_mismatch", "report_mismatch"}


def _zip(*members: tuple[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as zf:
        for name, data in members:
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return out.getvalue()


def _bomb() -> bytes:
    """Every member a pack has, one of them 64 MB of zeros deflated to 64 kB (whatever its size says, a
    compressed member is refused before it is inflated)."""
    return _zip(*((n, b"") for n in evidence_pack.MEMBERS[:-1]), ("manifest.json", bytes(64 << 20)),
                method=zipfile.ZIP_DEFLATED)  # fmt: skip


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("not a zip", lambda data: b"PK not really", "not a readable zip"),
        ("empty", lambda data: b"", "not a readable zip"),
        ("truncated", lambda data: data[: len(data) // 2], "not a readable zip"),
        ("traversal", lambda data: _zip(("../../etc/passwd", b"x")), "a path in them"),
        ("absolute", lambda data: _zip(("/tmp/x", b"x")), "a path in them"),
        ("wrong names", lambda data: _zip(("pack.json", b"{}"), ("other.txt", b"")), "not a pack's"),
        ("bomb", lambda data: _bomb(), "compressed or over"),
        ("bad json", lambda data: canonical_zip([(n, b"{") for n in evidence_pack.MEMBERS]), "not JSON"),
    ],
)
def test_what_is_no_pack_is_a_clear_error(
    built: Built, tmp_path: Path, name: str, make, message: str
) -> None:  # type: ignore[no-untyped-def]
    data = make(built.data)
    with pytest.raises(PackInvalid, match=message):
        verify_pack(data, built.anchor)
    pack = tmp_path / "bad.zip"
    pack.write_bytes(data)
    done = _verify_pack_command(tmp_path, str(pack), "--anchor", built.anchor)
    assert done.exit_code == 2 and message in done.output and "Traceback" not in done.output, done.output


def test_the_anchor_defaults_to_the_sites_trust_and_a_missing_one_is_refused(
    built: Built, tmp_path: Path
) -> None:
    pack = tmp_path / "pack.zip"
    pack.write_bytes(built.data)
    site = tmp_path / "site"
    site.mkdir()
    assert _verify_pack_command(site, str(pack)).exit_code == 2  # no trust.json: no anchor
    (site / "trust.json").write_bytes((built.hub.settings.home / "trust.json").read_bytes())
    assert _verify_pack_command(site, str(pack)).exit_code == 0
    assert _verify_pack_command(site, str(tmp_path / "missing.zip")).exit_code == 2
    assert _verify_pack_command(site, str(pack), "--anchor", "beef").exit_code == 2


def _verify_pack_command(home: Path, *args: str) -> Result:
    root = typer.Typer()
    root.add_typer(hub_commands.audit_app, name="audit")
    root.command()(lambda: None)
    env = {"SHAREHUB_HOME": str(home), "SHAREHUB_KAFKA_BOOTSTRAP": "127.0.0.1:9"}  # nothing listens there
    return CliRunner().invoke(root, ["audit", "verify-pack", *args], env=env)


def test_scope_is_a_consumer_or_one_subject() -> None:
    with pytest.raises(Exception, match="not both"):
        Scope.asked(CONSUMER, "party-members", "0" * 32, None, None)
    with pytest.raises(Exception, match="32 lower-case hex"):
        Scope.asked(None, "party-members", "PM1", None, None)
    assert Scope.asked(None, "party-members", "0" * 32, None, None).subject_ref == "0" * 32


def test_a_member_past_the_cap_is_refused_before_it_is_read(
    built: Built, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(evidence_pack, "MAX_MEMBER_BYTES", 1000)
    with pytest.raises(PackInvalid, match="over 1,000 bytes"):
        verify_pack(built.data, built.anchor)
