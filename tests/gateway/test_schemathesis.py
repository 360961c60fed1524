"""Schemathesis against a running two-worker gateway, from its own OpenAPI document.

Every documented operation gets generated requests, schema-valid (positive) and
schema-violating (negative), with the token of the scope it needs. The gateway must never
answer 5xx, and every answer must match what the document declares: status code, content
type, headers and body schema. Generation is derandomized and bounded, so a run is
repeatable and short.

Schemathesis' own pytest integration (``schemathesis.pytest.from_fixture``) does not run
under pytest 9 (it sets a private node attribute that no longer exists), so each
operation's strategy is driven with Hypothesis directly and the failures of all operations
are collected into one report.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from tests.gateway.conftest import GatewayProcess, http

pytestmark = pytest.mark.slow

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 20


def _run_operation(operation: Any, mode: GenerationMode, server: GatewayProcess) -> str | None:
    """Drive one operation; the failure (with a curl line to reproduce it) or None."""
    admin = operation.path.startswith("/v1/admin/")
    headers = server.admin_headers if admin else server.headers

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    def run(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS, timeout=30)

    try:
        run()
    except Unsatisfiable:
        # Negative mode on an operation without parameters or body: nothing can violate
        # its schema, so there is nothing to send.
        assert mode is GenerationMode.NEGATIVE, operation.path
        return None
    except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup included
        return f"{operation.method.upper()} {operation.path}: {exc}"
    return None


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_error_and_no_schema_violation(
    gateway_server: GatewayProcess, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_url(gateway_server.base_url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    paths = {op.path for op in operations}
    # The document covers the whole service, not a corner of it.
    assert {
        "/v1/models/{name}/predict",
        "/v1/models/{name}/feedback",
        "/v2/models/{name}/infer",
        "/v1/admin/models/{name}/route",
        "/metrics",
        "/readyz",
    } <= paths
    failures = [f for op in operations if (f := _run_operation(op, mode, gateway_server))]
    assert not failures, "\n\n".join(failures)
    # Generated admin calls may have moved aliases and routes; the server still answers.
    status, body = http("GET", gateway_server.base_url + "/readyz")
    assert status == 200, body[:300]
