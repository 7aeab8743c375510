"""The projection's decisions, free of any transport: which events are valid, and what each consumer gets.

For every message, in log order, the dataset's codec (:mod:`sharehub.codec`) runs parse → authenticate
(dataset, signature, owner) → lane → chain → decrypt. An event that fails any step goes to quarantine with
its reason and is never applied. An event that
continues its chain is applied to every consumer holding an active agreement, limited to the agreement's
fields; an ERASED event, or an event whose subject's key was destroyed, purges that subject everywhere.

:meth:`Projector.decide` judges a batch; :meth:`Projector.commit` writes each consumer's rows, purges,
positions and chain heads in one transaction. The worker sends quarantined events to the quarantine topic
*between* the two, so a crash can duplicate a quarantine entry but never lose one.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from projections.generations import BuildingGeneration, granted, only_widens, target_of
from projections.read_model import ReadModelStore
from projections.read_model_tables import ChainHeads, Generations, Row, TopicPartition
from sharehub import chain
from sharehub.avro import RecordSchema
from sharehub.codec import DatasetCodec, DatasetKeys, Opened, codecs_by_topic
from sharehub.envelope import Envelope
from sharehub.errors import EnvelopeError, RowFilterError, UnknownDataset
from sharehub.gov.views import Agreement, GovernanceView, level
from sharehub.kafka import Record
from sharehub.row_filter import RowFilter, compile_filter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    #: ``value`` parsed already (:func:`parsed`: no key is needed, so the worker does it while the engine
    #: projects the batch before), or None: the projector parses it.
    envelope: Envelope | EnvelopeError | None = None

    @property
    def tp(self) -> TopicPartition:
        return (self.topic, self.partition)

    @classmethod
    def of(cls, record: Record) -> LogMessage:
        """A record as the topic reader gave it (:class:`sharehub.kafka.Record`)."""
        return cls(record.topic, record.partition, record.offset, record.key, record.value)


#: The quarantine reason of a record that breaks one of its dataset's quality rules (the rule is the detail).
QUALITY_RULE = "quality_rule"


@dataclass(frozen=True)
class Quarantined:
    message: LogMessage
    reason: str
    detail: str


@dataclass(slots=True)
class _Apply:
    message: LogMessage
    event: Opened
    dataset: str
    _json: dict[str, Any] | None = None

    @property
    def record_key(self) -> str:
        assert self.event.record_key is not None
        return self.event.record_key

    @property
    def subject_ref(self) -> str:
        return self.event.subject_ref

    def record_json(self) -> dict[str, Any]:
        """The whole record as JSON values, made once for every consumer it is granted to."""
        if self._json is None:
            assert self.event.record is not None and self.event.schema is not None
            self._json = self.event.schema.to_json(self.event.record)
        return self._json


@dataclass(frozen=True)
class _Purge:
    message: LogMessage
    dataset: str
    subject_ref: str


@dataclass
class Decision:
    """What one batch does: rows, purges, positions and chain heads per consumer, and what is quarantined."""

    rows: dict[str, list[Row]] = field(default_factory=dict)
    #: Per consumer, the erased subjects (dataset, subject_ref): every record they have goes.
    purges: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    #: Per consumer, the records its row filter no longer passes (dataset, record_key): each one goes.
    exclusions: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    positions: dict[str, dict[TopicPartition, int]] = field(default_factory=dict)
    heads: ChainHeads = field(default_factory=dict)
    quarantined: list[Quarantined] = field(default_factory=list)

    def applied(self) -> int:
        return sum(len(r) for r in self.rows.values())


@dataclass
class Reconciled:
    """What :meth:`Projector.reconcile` changed: {(consumer, dataset): rows deleted}."""

    #: The consumer's agreement ended (revoked, suspended, expired): its rows left the read model (R5).
    purged: dict[tuple[str, str], int] = field(default_factory=dict)
    #: New terms (an activation, or an agreement replaced by narrower terms): the dataset starts over in the
    #: read model and is backfilled from its first event.
    reset: dict[tuple[str, str], int] = field(default_factory=dict)
    #: New terms that only widen the grant: a new generation is built beside the rows served (how many).
    building: dict[tuple[str, str], int] = field(default_factory=dict)
    #: A generation built has caught up and is served now (how many rows it has).
    swapped: dict[tuple[str, str], int] = field(default_factory=dict)
    #: Per consumer, rows of generations swapped out that were deleted this round.
    retired: dict[str, int] = field(default_factory=dict)


#: How long one reconciliation may spend deleting a read model's retired generation (live batches wait).
RETIRED_BUDGET_S = 0.25

#: A projection target: a consumer's read model, or a generation of one of its datasets being built.
Target = ReadModelStore | BuildingGeneration


class Projector:
    """Turns dataset-topic messages into consumer read-model rows under governance's agreements."""

    def __init__(
        self,
        governance: GovernanceView,
        keys: DatasetKeys,
        stores: Mapping[str, ReadModelStore],
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        *,
        builds: Mapping[str, BuildingGeneration] | None = None,
    ) -> None:
        self._governance = governance
        self._keys = keys
        self._stores = dict(stores)
        #: Generations being built (:mod:`projections.generations`), by target; known from the read models
        #: at each :meth:`reconcile`.
        self._builds = dict(builds or {})
        self._clock = clock
        self._dataset_by_topic = {d.topic: d.id for d in governance.datasets()}
        #: (topic, lane)s where the log had deleted records before the first one read: a chain there with no
        #: head yet goes on from its first event read (:data:`sharehub.chain.RETAINED_AWAY`).
        self._retained_away: set[tuple[str, int]] = set()
        #: One codec per dataset topic: it verifies, judges the chain and decrypts.
        self._codecs: Mapping[str, DatasetCodec] = codecs_by_topic(governance.datasets(), governance, keys)
        self._heads: ChainHeads = {}
        #: decide, commit and resume_offset change the chain heads; callers may run them on threads.
        self._lock = threading.RLock()
        #: Per partition, the next offset to judge: anything below was judged already (a redelivery).
        self._judged: dict[TopicPartition, int] = {}
        self._filters: dict[tuple[str, str, bytes], RowFilter] = {}
        self._quality_rules: dict[tuple[str, bytes], RowFilter] = {}
        #: consumer → dataset → the terms its rows were projected under (None: nothing granted).
        self._recorded: dict[str, dict[str, str | None]] = {}

    @property
    def topics(self) -> list[str]:
        return sorted(self._dataset_by_topic)

    def stored_offset(self, tp: TopicPartition) -> int:
        """The least position any read model stored for ``tp``: where reading must resume. Read-only."""
        return min((store.positions().get(tp, 0) for store in self._resumed_from().values()), default=0)

    def _targets(self) -> dict[str, Target]:
        """Every read model, then every generation being built: what a batch is decided and committed for."""
        return {**self._stores, **self._builds}

    def _resumed_from(self) -> Mapping[str, Target]:
        """What the stream resumes from: the read models (a generation being built is backfilled, never a
        reason to go back); for a projector that backfills a generation alone, that generation."""
        return self._stores or self._builds

    def for_one(self, target: str) -> Projector:
        """A projector of its own over one target alone (a consumer's read model, or a generation being
        built), under the same governance and keys: it backfills that target from its positions (its own
        chain heads and judged offsets), beside this one, which leaves a target behind its stream alone
        (:meth:`decide`)."""
        if target in self._builds:
            builds = {target: self._builds[target]}
            return Projector(self._governance, self._keys, {}, self._clock, builds=builds)
        return Projector(self._governance, self._keys, {target: self._stores[target]}, self._clock)

    def resume(self, tps: Sequence[TopicPartition]) -> None:
        """The stream of ``tps`` goes on from the least position a read model stored (where the worker
        sought: the partitions may have moved on under another worker): what this projector knew of them is
        dropped, and their chain heads are taken from a read model that stands there. Judged now, not at
        the next message: a read model reset to its start later is backfilled, not a reason to go back."""
        stored = [(consumer, store.positions()) for consumer, store in self._resumed_from().items()]
        with self._lock:
            for tp in tps:
                self._resume(tp, {consumer: positions.get(tp, 0) for consumer, positions in stored})

    def lagging(self, live: Mapping[TopicPartition, int]) -> dict[str, dict[TopicPartition, int]]:
        """Per consumer, the partitions of ``live`` (partition → the offset its stream takes next) where its
        read model stands behind the stream (a dataset reset to its start for new terms), with its position
        there: what must be backfilled. Read-only: one query per read model."""
        behind: dict[str, dict[TopicPartition, int]] = {}
        for consumer, store in self._targets().items():
            stored = store.positions()
            late = {
                tp: stored.get(tp, 0)
                for tp, next_offset in live.items()
                if stored.get(tp, 0) < next_offset and _covers(store, tp)
            }
            if late:
                behind[consumer] = late
        return behind

    def resume_offset(self, tp: TopicPartition) -> int:
        """Where to start reading ``tp`` so that no read model misses anything: the least stored position.
        The chain heads are taken from a read model that stands exactly there."""
        with self._lock:
            return self._resume(tp)

    def join_stream(self, consumer: str, tps: Sequence[TopicPartition]) -> None:
        """``consumer``'s read model, behind this projector's stream in ``tps`` where the log holds nothing
        below the stream any more (retained away), goes on with it: its positions and chain heads there
        become this projector's, so the next batch applies to it."""
        with self._lock:
            judged = {tp: self._judged[tp] for tp in tps if tp in self._judged}
            heads = {k: v for k, v in self._heads.items() if k[:2] in judged}
            if judged:
                self._targets()[consumer].apply([], judged, heads=heads)

    def _resume(self, tp: TopicPartition, stored: Mapping[str, int] | None = None) -> int:
        """Judge ``tp`` from the least position a read model stored (``stored``: each one's there, when read
        already), with the chain heads of a read model standing there."""
        resumed_from = self._resumed_from()
        if stored is None:
            stored = {consumer: store.positions().get(tp, 0) for consumer, store in resumed_from.items()}
        offset = min(stored.values(), default=0)
        self._drop_heads(tp)
        self._retained_away.discard(tp)
        behind = [c for c, position in stored.items() if position == offset]
        if offset and behind:
            self._heads.update(resumed_from[behind[0]].chain_heads(tp))
        self._judged[tp] = offset
        return offset

    def decide(self, batch: Sequence[LogMessage]) -> Decision:
        with self._lock:
            return self._decide(batch)

    def _decide(self, batch: Sequence[LogMessage]) -> Decision:
        decision = Decision()
        #: Per partition, where this batch takes over. A read model whose position is below it is being
        #: backfilled (reset to its start for new terms): this batch leaves that partition of it alone.
        takes_over: dict[TopicPartition, int] = {}
        # Per topic, in batch order (each partition's order is all a chain needs), opened by its codec.
        todo: dict[str, list[tuple[int, LogMessage]]] = {}
        for index, message in enumerate(batch):
            if message.tp not in self._judged:
                self._resume(message.tp)
            takes_over.setdefault(message.tp, self._judged[message.tp])
            if message.offset < self._judged[message.tp]:
                continue  # judged before: a redelivery after a rebalance or a restart
            if message.offset > self._judged[message.tp]:
                self._skipped_to(message)
            self._judged[message.tp] = message.offset + 1
            todo.setdefault(message.topic, []).append((index, message))
        verdicts = self._verdicts(todo, decision)
        moved_tps = {m.tp for m in batch}
        decision.heads = {k: v for k, v in self._heads.items() if k[:2] in moved_tps}
        # Each partition's last offset in the batch, and each verdict's place: looked up per consumer below.
        ends: dict[TopicPartition, int] = {}
        for message in batch:
            ends[message.tp] = max(ends.get(message.tp, 0), message.offset + 1)
        placed = [(v.message.tp, v.message.offset, v) for v in verdicts]
        now = self._clock()
        for target, store in self._targets().items():
            done = store.positions()
            # A partition the target stands behind in is left alone (backfilled), as is another dataset's.
            lagging = {
                tp for tp, start in takes_over.items() if done.get(tp, 0) < start or not _covers(store, tp)
            }
            moved = {tp: end for tp, end in ends.items() if tp not in lagging and end > done.get(tp, 0)}
            placed_here = [(i, v) for i, (tp, offset, v) in enumerate(placed)
                           if tp not in lagging and offset >= done.get(tp, 0)]  # fmt: skip
            consumer = store.consumer if isinstance(store, BuildingGeneration) else target
            rows, purges, exclusions = self._for_consumer(consumer, placed_here, now)
            decision.rows[target], decision.purges[target] = rows, purges
            decision.exclusions[target] = exclusions
            decision.positions[target] = moved
        return decision

    def _verdicts(
        self, todo: dict[str, list[tuple[int, LogMessage]]], decision: Decision
    ) -> list[_Apply | _Purge]:
        """Every message's verdict, in batch order; the refused ones go into ``decision``'s quarantine."""
        outcomes: list[tuple[int, LogMessage, Opened | EnvelopeError]] = []
        for topic, items in todo.items():
            for (index, message), outcome in zip(items, self._open(topic, items), strict=True):
                outcomes.append((index, message, outcome))
        outcomes.sort(key=lambda o: o[0])
        verdicts: list[_Apply | _Purge] = []
        rules: dict[str, tuple[str, ...]] = {}  # each dataset's quality rules, looked up once a batch
        for _, message, outcome in outcomes:
            dataset = self._dataset_by_topic.get(message.topic, "")
            if isinstance(outcome, EnvelopeError):
                decision.quarantined.append(Quarantined(message, outcome.reason, str(outcome)))
                continue
            if outcome.erased:
                verdicts.append(_Purge(message, dataset, outcome.subject_ref))
                continue
            if dataset not in rules:
                rules[dataset] = self._governance.dataset(dataset).quality_rules
            broken = self._broken_quality_rule(rules[dataset], outcome) if rules[dataset] else None
            if broken is not None:
                decision.quarantined.append(Quarantined(message, QUALITY_RULE, broken))
            else:
                verdicts.append(_Apply(message, outcome, dataset))
        return verdicts

    def _broken_quality_rule(self, rules: tuple[str, ...], opened: Opened) -> str | None:
        """The first of ``rules`` (its dataset's quality rules) the record breaks. Publishers check them too,
        but a record that reaches the log past them (another client, a rule added since) reaches no read
        model."""
        assert opened.schema is not None and opened.record is not None  # not an erasure
        for rule in rules:
            cache_key = (rule, opened.schema.fingerprint)
            compiled = self._quality_rules.get(cache_key)
            if compiled is None:
                try:
                    compiled = self._quality_rules[cache_key] = compile_filter(rule, opened.schema)
                except RowFilterError:
                    continue  # a rule that does not fit an old version says nothing of its records
            if not compiled.matches(opened.record):
                return rule
        return None

    def _for_consumer(
        self, consumer: str, placed: list[tuple[int, _Apply | _Purge]], now: dt.datetime
    ) -> tuple[list[Row], list[tuple[str, str]], list[tuple[str, str]]]:
        """The consumer's rows, erasures and exclusions for the verdicts it has not applied yet. An erasure
        drops its subject's rows before it in this batch; a row filter the record no longer passes drops
        that record's rows before it. The store removes first and writes the rows after, so a later row
        outlives an earlier removal."""
        rows: list[tuple[int, Row]] = []
        erased: dict[tuple[str, str], int] = {}
        excluded: dict[tuple[str, str], int] = {}
        grants = _Grants(functools.partial(self._terms, consumer, now=now))
        for i, verdict in placed:
            if isinstance(verdict, _Purge):
                erased[(verdict.dataset, verdict.subject_ref)] = i
                continue
            granted = grants.row(verdict)
            if isinstance(granted, Row):
                rows.append((i, granted))
            elif granted is not None:
                excluded[granted] = i
        kept = [
            r
            for i, r in rows
            if i > erased.get((r.dataset, r.subject_ref), -1)
            and i > excluded.get((r.dataset, r.record_key), -1)
        ]
        return kept, list(erased), list(excluded)

    def prune_history(self, horizons: Mapping[str, dt.datetime]) -> dict[str, int]:
        """Every read model forgets, in each dataset of ``horizons``, the past versions no read "as of" its
        horizon or later needs (datasets not named keep every version); returns how many each forgot."""
        with self._lock:
            return {
                consumer: store.prune_history(horizons) for consumer, store in sorted(self._stores.items())
            }

    def reconcile(self) -> Reconciled:
        """Bring every read model in line with the agreements active now. A dataset whose consumer holds no
        active agreement any more is purged, every generation of it (R5). One whose active terms differ from
        those its rows were projected under is projected again from its start: beside the rows served when
        the new terms only widen the grant (:mod:`projections.generations`), in their place otherwise. A
        generation built that has caught up is swapped in; one swapped out loses some of its rows."""
        now = self._clock()
        done = Reconciled()
        with self._lock:
            for consumer, store in self._stores.items():
                recorded = self._recorded.get(consumer)
                if recorded is None:
                    recorded = self._recorded[consumer] = dict(store.recorded_terms())
                    for dataset, _ in store.datasets():
                        recorded.setdefault(dataset, "unrecorded")  # rows of unknown terms: start over
                else:
                    recorded.update(store.recorded_terms())  # a replay another process requested
                kept = store.generations()
                changed = False  # where the rows are kept: read again after a change, not every round
                for topic, dataset in self._dataset_by_topic.items():
                    agreement = self._governance.active_agreement(consumer, dataset, now)
                    wanted = None if agreement is None else self._terms_digest(consumer, agreement)
                    gen = kept.get(dataset)
                    if recorded.get(dataset) == wanted:
                        if gen is not None and gen.building is not None and store.swap_built(dataset, topic):
                            done.swapped[(consumer, dataset)] = store.count(dataset)
                            changed = True
                        continue
                    changed = True
                    if agreement is None or wanted is None:
                        done.purged[(consumer, dataset)] = store.purge_dataset(dataset, topic)
                        recorded[dataset] = wanted
                        continue
                    grant = self._granted(consumer, agreement)
                    if (
                        gen is not None
                        and gen.building is None
                        and only_widens(store.granted(dataset), grant)
                    ):
                        store.delete_retired()  # a generation swapped out before goes first, whole
                        store.start_building(
                            dataset, topic, terms=wanted, agreement_id=agreement.id, granted=grant
                        )
                        done.building[(consumer, dataset)] = store.count(dataset)
                    else:
                        done.reset[(consumer, dataset)] = store.reset_dataset(
                            dataset, topic, terms=wanted, agreement_id=agreement.id, granted=grant
                        )
                    recorded[dataset] = wanted
                if changed:
                    kept = store.generations()
                retiring = any(gen.retired is not None for gen in kept.values())
                if retiring and (retired := store.delete_retired(budget_s=RETIRED_BUDGET_S)):
                    done.retired[consumer] = retired
                self._follow_builds(consumer, store, kept)
        return done

    def _follow_builds(self, consumer: str, store: ReadModelStore, kept: Mapping[str, Generations]) -> None:
        """Project into every generation ``consumer``'s read model builds now (``kept``: where its rows are
        kept, whichever worker opened a generation), and no longer into one swapped in or given up."""
        topic_of = {dataset: topic for topic, dataset in self._dataset_by_topic.items()}
        building = {
            target_of(consumer, dataset): dataset
            for dataset, gen in kept.items()
            if gen.building is not None and dataset in topic_of
        }
        for target in [t for t, b in self._builds.items() if b.consumer == consumer and t not in building]:
            del self._builds[target]
        for target, dataset in building.items():
            if target not in self._builds:
                self._builds[target] = BuildingGeneration(store, consumer, dataset, topic_of[dataset])

    def new_consumers(self) -> list[str]:
        """Agencies that hold an agreement and have no read model here yet (:meth:`adopt` them)."""
        consumers = {a.consumer for a in self._governance.agreements()}
        return sorted(consumers - set(self._stores))

    def adopt(self, consumer: str, store: ReadModelStore) -> None:
        """Project into ``consumer``'s read model from now on. It stands at the start of every partition,
        behind the stream: it is backfilled, and its terms are recorded at the next :meth:`reconcile`."""
        with self._lock:
            self._stores.setdefault(consumer, store)

    def outgrown(self) -> list[str]:
        """What governance added since this projector was made that it cannot take on (a dataset: a projector
        reads a fixed set of topics; a consumer not adopted), so it must be made again to serve them."""
        changes = [
            f"dataset {d.id!r} declared"
            for d in self._governance.datasets()
            if d.topic not in self._dataset_by_topic
        ]
        changes += [f"consumer {c!r} holds an agreement" for c in self.new_consumers()]
        return changes

    def commit(self, decision: Decision) -> None:
        with self._lock:
            self._commit(decision)

    def _commit(self, decision: Decision) -> None:
        try:
            # A generation being built commits after its read model: it never stands ahead of the rows served.
            for consumer, store in self._targets().items():
                moved = decision.positions.get(consumer, {})
                heads = {k: v for k, v in decision.heads.items() if k[:2] in moved}
                if moved:
                    store.apply(
                        decision.rows.get(consumer, []),
                        moved,
                        purges=decision.purges.get(consumer, []),
                        exclusions=decision.exclusions.get(consumer, []),
                        heads=heads,
                    )
        except BaseException:
            self._judged.clear()  # judge again from the stored positions: nothing may be skipped
            raise

    # --- judging messages -----------------------------------------------------------------------------

    def _skipped_to(self, message: LogMessage) -> None:
        """The log no longer holds the records of ``message``'s partition before it (Kafka never skips an
        offset otherwise: only retention, or a deletion, moves a partition's start). Under its dataset's
        retention (one in force now or before, :meth:`~sharehub.gov.views.Dataset.retained_away_by`), every
        chain there goes on from its next event read; a dataset kept for ever has lost events, and its
        chains report the gap (chain_gap)."""
        dataset = self._dataset_by_topic.get(message.topic)
        if dataset is None or not self._governance.dataset(dataset).retained_away_by(self._clock()):
            return
        lane = (message.topic, message.partition)
        log.info("%s[%d] starts at offset %d: the records before were retained away", *lane, message.offset)
        self._retained_away.add(lane)
        self._drop_heads(lane)

    def _drop_heads(self, tp: TopicPartition) -> None:
        """Forget every chain head this projector holds in ``tp``."""
        for key in [k for k in self._heads if k[:2] == tp]:
            del self._heads[key]

    def _open(self, topic: str, items: list[tuple[int, LogMessage]]) -> list[Opened | EnvelopeError]:
        """The messages of one topic through its dataset's codec, their chains judged against this
        projector's heads."""
        codec = self._codecs.get(topic)
        if codec is None:
            refused = UnknownDataset(f"topic {topic!r} carries no registered dataset")
            return [refused for _ in items]
        events = [(m.partition, parsed(m.value) if m.envelope is None else m.envelope) for _, m in items]
        return codec.open_many(events, _TopicHeads(self._heads, topic, self._retained_away))

    def _terms(self, consumer: str, dataset: str, schema: RecordSchema, *, now: dt.datetime) -> _Terms | None:
        """What ``consumer`` is granted of ``dataset``'s records of ``schema`` now; None: nothing."""
        agreement = self._governance.active_agreement(consumer, dataset, now)
        if agreement is None:
            return None  # default deny
        withheld = self._withheld(consumer, agreement)
        return _Terms(
            agreement,
            tuple(name for name in agreement.fields if name in schema.fields and name not in withheld),
            self._row_filter(agreement, schema),
        )

    def _withheld(self, consumer: str, agreement: Agreement) -> frozenset[str]:
        """Granted fields the dataset now classifies above ``consumer``'s clearance (raised after the grant):
        never projected to it, whatever an event's own schema says (a classification is only ever raised,
        so the current version's is the highest any version gave)."""
        clearance = level(self._governance.agency(consumer).clearance)
        current = self._governance.current_schema(agreement.dataset).fields
        return frozenset(
            name
            for name in agreement.fields
            if name in current and level(current[name].classification) > clearance
        )

    def _granted(self, consumer: str, agreement: Agreement) -> str:
        """What the agreement grants ``consumer`` (:func:`projections.generations.granted`)."""
        withheld = self._withheld(consumer, agreement)
        return granted((name for name in agreement.fields if name not in withheld), agreement.row_filter)

    def _terms_digest(self, consumer: str, agreement: Agreement) -> str:
        """What ``consumer``'s rows of the agreement's dataset depend on: its terms, less what is withheld."""
        withheld = self._withheld(consumer, agreement)
        if not withheld:
            return agreement.terms_digest
        return hashlib.sha256(f"{agreement.terms_digest}-{','.join(sorted(withheld))}".encode()).hexdigest()

    def _row_filter(self, agreement: Agreement, schema: RecordSchema) -> RowFilter | None:
        """The agreement's row filter compiled against the event's schema, once per (terms, schema)."""
        if agreement.row_filter is None:
            return None
        cache_key = (agreement.id, agreement.row_filter, schema.fingerprint)
        compiled = self._filters.get(cache_key)
        if compiled is None:
            compiled = compile_filter(agreement.row_filter, schema, allowed_fields=agreement.fields)
            self._filters[cache_key] = compiled
        return compiled


@dataclass(frozen=True, slots=True)
class _Terms:
    """One consumer's grant on one dataset's records of one schema."""

    agreement: Agreement
    #: The granted fields the schema has, in the agreement's order.
    fields: tuple[str, ...]
    row_filter: RowFilter | None


class _Grants:
    """One consumer's rows for a batch: its terms (``lookup(dataset, schema)``) looked up once per dataset
    and schema."""

    def __init__(self, lookup: Callable[[str, RecordSchema], _Terms | None]) -> None:
        self._lookup = lookup
        self._terms: dict[tuple[str, bytes], _Terms | None] = {}
        # A batch is mostly one dataset under one schema: the last terms found answer most events.
        self._last: tuple[str, RecordSchema, _Terms | None] | None = None

    def row(self, verdict: _Apply) -> Row | tuple[str, str] | None:
        """The consumer's row for the event; or (dataset, record_key) when the agreement's row filter
        excludes the record (so an earlier version of it must go); or None: no active agreement."""
        event = verdict.event
        record = event.record
        if record is None:
            return None
        assert event.schema is not None  # every event that is not an erasure has its schema
        terms = self._terms_for(verdict.dataset, event.schema)
        if terms is None:
            return None  # default deny
        if terms.row_filter is not None and not terms.row_filter.matches(record):
            return (verdict.dataset, verdict.record_key)
        as_json = verdict.record_json()
        header = event.envelope.header
        return Row(
            dataset=verdict.dataset,
            record_key=verdict.record_key,
            subject_ref=verdict.subject_ref,
            fields={name: as_json[name] for name in terms.fields},
            event_id=header.event_id,
            occurred_at=header.occurred_at,
            agreement_id=terms.agreement.id,
        )

    def _terms_for(self, dataset: str, schema: RecordSchema) -> _Terms | None:
        last = self._last
        if last is not None and last[1] is schema and last[0] == dataset:
            return last[2]
        key = (dataset, schema.fingerprint)
        if key not in self._terms:
            self._terms[key] = self._lookup(dataset, schema)
        terms = self._terms[key]
        self._last = (dataset, schema, terms)
        return terms


def _covers(target: Target, tp: TopicPartition) -> bool:
    """Whether ``target`` takes ``tp``'s events: a read model every dataset's, a generation its dataset's."""
    return not isinstance(target, BuildingGeneration) or tp[0] == target.topic


def parsed(raw: bytes) -> Envelope | EnvelopeError:
    """The envelope's structure and header (:func:`sharehub.envelope.parse`), or why it has none: an error
    the projector quarantines the message with."""
    try:
        return DatasetCodec.parse(raw)
    except EnvelopeError as exc:
        return exc


class _TopicHeads(MutableMapping[tuple[int, str], chain.ChainHead]):
    """One topic's chain heads, (lane, producer) → head, as a view of the read models' (topic, lane,
    producer) → (sequence, hash). In a lane of ``retained_away`` a chain with no head yet is one whose
    earlier events were retained away."""

    def __init__(self, heads: ChainHeads, topic: str, retained_away: set[tuple[str, int]]) -> None:
        self._heads, self._topic, self._retained_away = heads, topic, retained_away

    def __getitem__(self, key: tuple[int, str]) -> chain.ChainHead:
        found = self._heads.get((self._topic, *key))
        if found is not None:
            return chain.ChainHead(*found)
        if (self._topic, key[0]) in self._retained_away:
            return chain.RETAINED_AWAY
        raise KeyError(key)

    def __setitem__(self, key: tuple[int, str], head: chain.ChainHead) -> None:
        self._heads[(self._topic, *key)] = (head.sequence, head.hash)

    def __delitem__(self, key: tuple[int, str]) -> None:
        del self._heads[(self._topic, *key)]

    def __iter__(self) -> Iterator[tuple[int, str]]:
        return ((p, who) for (t, p, who) in self._heads if t == self._topic)

    def __len__(self) -> int:
        return sum(1 for _ in self)
