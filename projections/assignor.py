"""faust's partition assignor, made safe against a group member that is not a faust worker of this hub.

The group leader reads every member's metadata to assign partitions; faust's own assignor parses each one
as its JSON client metadata and raises on anything else, which kills the leader (the worker). Broker ACLs
keep other principals out of the projector's group, but a member that gets in anyway, or a corrupted one,
must not stop projection for everyone: a member whose metadata does not parse is assigned nothing and
named in the log.
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from faust.assignor import PartitionAssignor

log = logging.getLogger("sharehub.projection")


class GuardedAssignor(PartitionAssignor):
    def assign(self, cluster: Any, member_metadata: Any) -> Any:
        sound, malformed = {}, []
        for member_id, metadata in member_metadata.items():
            try:
                self._get_client_metadata(metadata)
                if not all(isinstance(t, str) for t in metadata.subscription):
                    raise ValueError("subscription is not a list of topics")
            except Exception as exc:  # noqa: BLE001 - any malformed metadata: that member gets nothing
                log.warning(
                    "group member %s sent malformed metadata (%s): it is assigned nothing", member_id, exc
                )
                malformed.append(member_id)
            else:
                sound[member_id] = metadata
        assignment = super().assign(cluster, sound) if sound else {}
        for member_id in malformed:
            assignment[member_id] = ConsumerProtocolMemberAssignment(self.version, [], b"")
        return assignment
