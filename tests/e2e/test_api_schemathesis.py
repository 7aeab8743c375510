"""schemathesis over every HTTP route the hub serves (the query API and the governance API share one app):
cases generated from the OpenAPI document, valid and invalid, each answered without a server error, with a
status, content type, headers and body the document describes. Bounded and seeded, against a hub on the
real broker with records in its read models.

The whole run is short enough for ``make test`` (25 cases per route, derandomized); a longer fuzz run is
``SHAREHUB_SCHEMATHESIS_EXAMPLES=2000 make test -- tests/e2e/test_api_schemathesis.py``.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.api.app import create_app
from services.governance_bootstrap import issue_credential
from services.hub import Hub
from tests.unit.test_avro import member
from tests.unit.test_projector import apply, messages, projector

pytestmark = pytest.mark.kafka
EXAMPLES = int(os.environ.get("SHAREHUB_SCHEMATHESIS_EXAMPLES", "25"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str
) -> Iterator[tuple[Hub, dict[str, str]]]:
    """A hub with demo governance and five members projected, and a credential per role."""
    from services.governance_bootstrap import load
    from sharehub.settings import Settings
    from tests.conftest import demo_spec

    home = tmp_path_factory.mktemp("schemathesis") / "home"
    hub = Hub(Settings(home=home, kafka_bootstrap=kafka_bootstrap, master_key=None, read_model_url=None))
    load(hub.governance_desk(), demo_spec())
    apply(projector(hub), messages(hub, [member(member_id=f"PM{i:010d}") for i in range(1, 6)]))
    tokens = {agency: issue_credential(hub, agency) for agency in ("dongthap-ppc", "cpo")}
    yield hub, tokens
    hub.close()


def test_every_route_answers_as_its_openapi_document_says(served: tuple[Hub, dict[str, str]]) -> None:
    hub, tokens = served
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(hub))
    operations = [result.ok() for result in schema.get_all_operations()]
    answered: Counter[tuple[str, int]] = Counter()
    assert len(operations) >= 9, [op.label for op in operations]

    for operation in operations:
        # The operator's credential where the operator acts (governance, status, metrics), a consumer's
        # elsewhere: refusals for the wrong agency are covered by the other tests; this is about answers.
        operator = operation.path.startswith(("/v1/gov", "/v1/status", "/metrics"))
        headers = {"Authorization": f"Bearer {tokens['cpo' if operator else 'dongthap-ppc']}"}

        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))  # fmt: skip
            def answers_as_documented(case: schemathesis.Case) -> None:
                response = case.call_and_validate(headers=headers, checks=CHECKS)  # noqa: B023
                answered[(operation.label, response.status_code)] += 1  # noqa: B023

            try:
                answers_as_documented()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE, operation.label  # nothing to get wrong (/healthz)
    # The cases reached past authentication and validation: records, refusals and errors were all seen.
    statuses = {status for (_, status) in answered}
    assert {200, 400, 403, 404, 422} <= statuses, sorted(answered.items())
