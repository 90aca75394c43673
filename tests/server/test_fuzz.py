"""Fuzz the REST API from its own OpenAPI document: no input may crash the server or earn a 5xx.

schemathesis turns each operation of /openapi.json into a hypothesis strategy, in positive mode
(valid by the schema) and negative mode (invalid by it), and every answer is checked against the
document. Bounded: at most 15 examples per operation and mode (13 operations positive, the 8 with
parameters or a body negative: 315 cases at most), so it takes seconds. The totals are printed in
pytest's summary.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode

from tests.server.conftest import FUZZ_STATS, Server

EXAMPLES = 15
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda mode: mode.value)
def test_rest_api_survives_fuzzing(iris_server: Server, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{iris_server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 13
    if mode is GenerationMode.NEGATIVE:  # a route with neither parameters nor body has no invalid form
        operations = [op for op in operations if len(op.path_parameters) or len(op.body)]

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def fuzz(case: schemathesis.Case) -> None:
            response = case.call(base_url=iris_server.url, timeout=10)
            FUZZ_STATS["cases"] += 1
            if response.status_code >= 500:
                FUZZ_STATS["server_errors"] += 1
            case.validate_response(response, checks=CHECKS)

        fuzz()
    assert iris_server.process.poll() is None, "the server died"
    assert FUZZ_STATS["server_errors"] == 0
