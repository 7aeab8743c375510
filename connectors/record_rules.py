"""What a record must satisfy before its owner may publish it: the dataset's current schema, and the
quality rules of the catalog (R9), compiled once per publisher."""

from __future__ import annotations

from typing import Any

from sharehub.avro import record_from_json
from sharehub.errors import RecordValidationError
from sharehub.gov.views import GovernanceView
from sharehub.row_filter import compile_filter


class RecordRules:
    def __init__(self, governance: GovernanceView, dataset: str) -> None:
        self.dataset = dataset
        self.schema = governance.current_schema(dataset)
        self._rules = [
            (rule, compile_filter(rule, self.schema)) for rule in governance.dataset(dataset).quality_rules
        ]

    def validated(self, record: Any) -> dict[str, Any]:
        """The JSON record as Avro data; RecordValidationError naming the field or the broken rule."""
        datum = record_from_json(self.schema, record)
        for text, rule in self._rules:
            if not rule.matches(datum):
                raise RecordValidationError(f"quality rule of {self.dataset!r} not met: {text}")
        return datum
