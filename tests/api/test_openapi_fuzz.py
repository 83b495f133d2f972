"""schemathesis against our own OpenAPI, in-process (ASGI) over the launched engine and simulated tenant:
no input gets a 5xx, and every response matches the documented status codes, content types and schemas.

Bounded: a fixed number of examples per operation, derandomized, so the suite stays deterministic.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from irflow.api.app import create_app
from irflow.engine.services.tokens import TokenCreate, create_token

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture(scope="module")
def fuzzed(api_engine) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    svc, _sim = api_engine
    app = create_app(svc, worker=True)
    token = create_token(svc.db, TokenCreate(name="schemathesis", role="admin"), actor="test").token
    return {"schema": schemathesis.openapi.from_asgi("/openapi.json", app), "token": token}


def test_no_5xx_and_responses_match_the_schema(fuzzed) -> None:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {fuzzed['token']}"}
    operations = [result.ok() for result in fuzzed["schema"].get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=20, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
        def exercise(case) -> None:  # type: ignore[no-untyped-def]
            case.call_and_validate(headers=headers, checks=CHECKS)

        exercise()
