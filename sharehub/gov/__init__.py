"""Event-sourced central governance: every change is a signed event on one hash-chained log.

- :mod:`~sharehub.gov.commands`: what an agency asks, one typed command per operation (CLI, HTTP, YAML);
- :mod:`~sharehub.gov.events`: what governance records, sealed and parsed (``schemas/governance-event.avsc``);
- :mod:`~sharehub.gov.rules`: what each change must satisfy, checked before signing and again on replay;
- :mod:`~sharehub.gov.verify`: signatures (operator keys, pinned as :class:`Trust`) and the chain;
- :mod:`~sharehub.gov.reducer` and :mod:`~sharehub.gov.state`: the state, :func:`fold`, the GovernanceView;
- :mod:`~sharehub.gov.service`: :class:`GovernanceService`, one method per operation;
- :mod:`~sharehub.gov.log`: the ``<prefix>-governance`` Kafka topic;
- :mod:`~sharehub.gov.apply`: declarative bootstrap from a hub YAML file (plan, then apply);
- :mod:`~sharehub.gov.models`: the folded state's records (every version of every agreement);
- :mod:`~sharehub.gov.views`: what the rest of the hub sees (:class:`~sharehub.gov.views.GovernanceView`).

See docs/governance.md.
"""

from sharehub.gov import anchors
from sharehub.gov.service import GovernanceService, new_credential
from sharehub.gov.state import GovState, fold, fold_log, fold_log_as_of
from sharehub.gov.verify import Trust

__all__ = [
    "GovState",
    "anchors",
    "GovernanceService",
    "Trust",
    "fold",
    "fold_log",
    "fold_log_as_of",
    "new_credential",
]
