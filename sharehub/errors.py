"""Every error sharehub raises on purpose, in one hierarchy.

::

    SharehubError
    ├── ConfigurationError        settings or local state unusable (master key missing or readable by others)
    ├── InputError                a caller's input is wrong; the message says what and where
    │   ├── RequestInvalid             a parameter or field missing or malformed (HTTP 422)
    │   ├── RecordValidationError      a record does not match its dataset's schema
    │   ├── UnknownReferenceError      an agency, dataset, consumer or key id that does not exist
    │   ├── RowFilterError             an agreement's row filter that does not parse or fit its schema
    │   ├── SchemaIncompatible         a new schema version that cannot read every old event
    │   │   └── SchemaBreaksAgreements     one that drops a field an agreement in force grants or filters on
    │   ├── DuplicateId                governance: an id (agency, key, dataset, agreement) already taken
    │   ├── ClearanceTooLow            governance: a field above the consumer's clearance
    │   ├── NotPermitted               governance: this agency may not take this step (e.g. self-approval)
    │   │   └── ForgedKeyRequest           a key registration request not signed by the key it registers
    │   ├── LifecycleViolation         governance: a step out of an agreement's lifecycle order
    │   ├── ValidityExpired            governance: a validity window that has already ended
    │   ├── InCustody                  the hub keeps this agency's keys and login: no site login of its own
    │   ├── CertificateRefused         the hub CA refuses a CSR (bad signature, another name, not ECDSA)
    │   ├── WrongSecret                a site's passphrase or token PIN that does not open its key
    │   ├── RequestTooLarge            a request body past the configured limit (HTTP 413)
    │   ├── IdempotencyKeyInvalid      a write without an Idempotency-Key, or a malformed one (HTTP 400)
    │   ├── IdempotencyConflict        an Idempotency-Key used before with another body (HTTP 409)
    │   ├── BodyNotJson                a request body that is not JSON (HTTP 400)
    │   ├── PackInvalid                not an evidence pack: not a zip, truncated, too large, wrong members
    │   └── BackupInvalid              a backup archive that is not one, was altered, or is of another hub
    ├── EnvelopeError             an event that must not be applied; ``reason`` is a stable machine code
    │   ├── MalformedEnvelope          not an envelope, truncated, trailing bytes malformed
    │   ├── UnsupportedEnvelopeVersion unknown envelope schema fingerprint        unsupported_envelope_version
    │   ├── UnknownSigner              agency or key unknown, or not valid then   unknown_signer
    │   ├── SignatureInvalid           signature fails over the exact bytes       bad_signature
    │   ├── NotOwner                   signer does not own the dataset            not_owner
    │   ├── DatasetMismatch            names another dataset than its topic's     dataset_mismatch
    │   ├── UnknownSchema              fingerprint names no schema of the dataset unknown_schema
    │   ├── UnknownDataKey             no data-encryption key with that id        unknown_data_key
    │   ├── DecryptionFailed           AES-GCM authentication failed              decryption_failed
    │   ├── PayloadInvalid             decrypted payload is not a valid record    payload_invalid
    │   ├── SubjectErased              the subject key was destroyed (erasure)    subject_erased
    │   ├── UnknownDataset             a topic that carries no registered dataset unknown_dataset
    │   └── ChainViolation             gap, replay, duplicate, fork, misrouted    chain_violation
    ├── AccessDenied              a query that may not be answered
    │   ├── NotAuthenticated          no or unknown credential (HTTP 401)
    │   ├── TooManyRequests           too many failed authentications from one address (HTTP 429)
    │   └── Forbidden                 authenticated, but not allowed (HTTP 403)
    │       └── PurposeNotAllowed          a query stating a purpose its agreement does not name
    ├── BrokerError               Kafka unreachable or a delivery failed
    ├── PublishingProcessError    one of the processes publishing a dataset's lanes failed to start, or exited
    ├── KeyServiceUnavailable     the hub's key service did not answer (nothing is sealed without it)
    ├── ReadModelUnavailable      the read-model database did not answer (HTTP 503 with Retry-After)
    ├── SourceUnavailable         a connector's source (an agency's database) did not answer
    ├── ProjectionError           the projection cannot go on from where it stands; the worker starts over
    │   ├── EngineProcessError         the engine process failed, or is gone
    │   └── EarlierBatchFailed         a batch came after one that failed
    ├── LocalKafkaError           the development broker (``sharehub kafka``) could not be managed
    │   ├── JarFetchError              Kafka's jars could not be fetched
    │   ├── BrokerStartError           the broker did not start or become ready
    │   │   └── PortInUseError              a port it needs is held by another process
    │   └── BrokerStopError            a broker process survived every attempt to stop it
    └── BenchmarkError            a benchmark could not run to its end

Messages never contain key material or record contents beyond field names.
"""

from __future__ import annotations


class SharehubError(Exception):
    """Base of every error sharehub raises on purpose."""


class ConfigurationError(SharehubError):
    """Settings or local state that make the hub unable to start safely."""


class InputError(SharehubError):
    """A caller's input is wrong."""


class RequestInvalid(InputError):
    """A request parameter or body field that is missing or malformed."""


class RecordValidationError(InputError):
    """A record does not match its dataset's schema."""


class UnknownReferenceError(InputError):
    """A reference to something that does not exist."""


class CertificateRefused(InputError):
    """The hub CA refuses to sign: a CSR whose own signature does not verify, or one for another name."""


class WrongSecret(InputError):
    """A site's passphrase that does not open its key file or TLS key, or is not its token's user PIN."""


class RowFilterError(InputError):
    """An agreement's row filter that does not parse or does not fit its dataset's schema; the message gives
    the column and an excerpt."""


class SchemaIncompatible(InputError):
    """A new version of a dataset schema that cannot read every event its earlier versions wrote."""


class SchemaBreaksAgreements(SchemaIncompatible):
    """A new version of a dataset schema that drops a field an agreement in force grants, or that its row
    filter reads (:mod:`sharehub.gov.impact`)."""


class DuplicateId(InputError):
    """Governance: an agency, key, dataset, schema version or agreement id that is already taken."""


class ClearanceTooLow(InputError):
    """Governance: an agreement would grant a field above its consumer's clearance (R4)."""


class NotPermitted(InputError):
    """Governance: this agency may not take this step (consent by a non-owner, self-approval, approval by
    the consumer or the owner or by one approver twice)."""


class ForgedKeyRequest(NotPermitted):
    """A key registration request whose signature does not verify under the key it asks to register: its
    sender does not hold the private key (no proof of possession)."""


class InCustody(InputError):
    """The hub acts for this agency (its keys and broker login are the hub's): a login of the agency's own
    site is refused until the agency makes its keys at its site (HTTP 409)."""


class LifecycleViolation(InputError):
    """Governance: a step out of an agreement's lifecycle order (approve before consent, resume when not
    suspended, anything after revocation)."""


class ValidityExpired(InputError):
    """Governance: a validity window (of an agreement or a key) that has already ended."""


class EnvelopeError(SharehubError):
    """An event that must not be applied. ``reason`` is stable and machine-readable."""

    reason = "envelope_error"


class MalformedEnvelope(EnvelopeError):
    reason = "malformed"


class UnsupportedEnvelopeVersion(EnvelopeError):
    reason = "unsupported_envelope_version"


class UnknownSigner(EnvelopeError):
    reason = "unknown_signer"


class SignatureInvalid(EnvelopeError):
    reason = "bad_signature"


class NotOwner(EnvelopeError):
    reason = "not_owner"


class DatasetMismatch(EnvelopeError):
    reason = "dataset_mismatch"


class UnknownSchema(EnvelopeError):
    reason = "unknown_schema"


class UnknownDataKey(EnvelopeError):
    reason = "unknown_data_key"


class DecryptionFailed(EnvelopeError):
    reason = "decryption_failed"


class PayloadInvalid(EnvelopeError):
    reason = "payload_invalid"


class ChainViolation(EnvelopeError):
    """An authentic event that does not continue its producer's chain; ``reason`` names how (chain_gap,
    replayed_sequence, duplicate, chain_fork, misrouted)."""

    reason = "chain_violation"

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class SubjectErased(EnvelopeError):
    """The event's data subject was erased: its personal fields can never be read again."""

    reason = "subject_erased"


class UnknownDataset(EnvelopeError):
    """A message on a topic that carries no registered dataset."""

    reason = "unknown_dataset"


class AccessDenied(SharehubError):
    """A query that may not be answered."""


class NotAuthenticated(AccessDenied):
    """No credential, or one the hub does not know."""


class TooManyRequests(AccessDenied):
    """Too many failed authentications from one address: try again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Forbidden(AccessDenied):
    """A known caller asking for something it may not see."""


class PurposeNotAllowed(Forbidden):
    """A query stating a purpose that none of the agreements it would be answered under names; ``allowed``
    lists the purposes that are (id, Vietnamese and English labels)."""

    def __init__(self, message: str, allowed: tuple[dict[str, str], ...]) -> None:
        super().__init__(message)
        self.allowed = allowed


class BrokerError(SharehubError):
    """Kafka could not be reached, or refused or lost a write."""


class PublishingProcessError(SharehubError):
    """One of the processes publishing a dataset's lanes side by side failed to start, or exited."""


class KeyServiceUnavailable(SharehubError):
    """The hub's key service did not answer, or answered with a failure of its own: an agency site seals
    nothing without the keys it gives."""


class ReadModelUnavailable(SharehubError):
    """The read-model database did not answer (stopped, restarting, unreachable): nothing was read or
    written; ask again after ``retry_after`` seconds."""

    retry_after = 5.0


class SourceUnavailable(SharehubError):
    """A connector's source did not answer (the agency's outbox database down or unreachable): the connector
    tries again, and publishes nothing it has not read."""


class ProjectionError(SharehubError):
    """The projection cannot go on from where it stands: the worker starts over from the read models."""


class EngineProcessError(ProjectionError):
    """The engine process failed, or is gone."""


class EarlierBatchFailed(ProjectionError):
    """A batch came after one that failed: the stream has moved past events no read model holds, so the
    worker must start over from the read models' positions."""


class LocalKafkaError(SharehubError):
    """Base of every error of the local broker manager; its message is meant for a human."""


class JarFetchError(LocalKafkaError):
    """The broker's jars could not be fetched (Maven missing, offline, or failing)."""


class BrokerStartError(LocalKafkaError):
    """The broker could not be started or did not become ready."""


class PortInUseError(BrokerStartError):
    """A port the broker needs is held by a process that is not this broker."""


class BrokerStopError(LocalKafkaError):
    """A broker process survived every attempt to stop it."""


class BenchmarkError(SharehubError):
    """A benchmark could not run to its end (a scenario failed, the broker stopped answering)."""


class RequestTooLarge(InputError):
    """A request body larger than the limit the server was configured with (refused before it is all read)."""


class IdempotencyKeyInvalid(InputError):
    """A write without an ``Idempotency-Key`` header, or with one that is not 1-200 printable characters."""


class IdempotencyConflict(InputError):
    """An ``Idempotency-Key`` that was used before with another request body."""


class BodyNotJson(InputError):
    """A request body that is not JSON (HTTP 400)."""


class PackInvalid(InputError):
    """Not an evidence pack (``sharehub audit verify-pack``): not a zip, truncated, past the size caps,
    members missing, extra or misnamed, or a member that does not parse."""


class BackupInvalid(InputError):
    """A backup archive that is not one, whose manifest or members were altered or name a path outside the
    home, or that is the backup of another hub (another topic prefix)."""
