"""schemathesis against the door's own /openapi.json: generated requests for every
operation get no 500 and answers that match the documented status codes and schemas."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from servers import Launch


@schemathesis.check
def no_internal_error(ctx, response, case) -> None:
    """503 (no responders, JetStream off) and 504 (timeouts) are answers; 500 is a bug."""
    if response.status_code >= 500 and response.status_code not in (503, 504):
        raise AssertionError(f"server error {response.status_code}: {response.text[:300]}")


CHECKS = [no_internal_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def door(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("schema")
    server = Launch(tmp)("-js", "-sd", str(tmp / "store"), "-m", "-1")
    yield server
    server.stop()


#: A live SSE response never ends; SSE is tested in test_http_sse.
SKIP = {"/v1/subscribe/{subject}"}


def test_no_server_errors_and_schema_conformance(door):
    base = f"http://127.0.0.1:{door.http_port}"
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    failures: list[str] = []
    tried = 0
    for result in schema.get_all_operations():
        op = result.ok()
        if op.path in SKIP:
            continue
        tried += 1

        @given(case=op.as_strategy())
        @settings(max_examples=30, deadline=None, phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck), derandomize=True, database=None)
        def run(case) -> None:
            case.call_and_validate(base_url=base, checks=CHECKS, timeout=15)

        try:
            run()
        except BaseException as exc:  # gather every operation's failure, then report
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures.append(f"{op.method.upper()} {op.path}: {exc}")
    assert tried > 30
    assert not failures, "\n\n".join(failures)
