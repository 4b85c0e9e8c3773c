"""Schemathesis against the live WSGI app, from the hub's own OpenAPI document: a few hundred
generated requests (valid and not) over every operation, as admin, and not one 5xx; every
4xx of the API carries the JSON error body.

Bounded (a fixed number of cases per operation, derandomized: about 12 s); marked slow, so
it runs in CI's full run (`pytest`), not in the under-a-minute unit tier.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Ok

from cloud.hub.http.auth import create_api_token, create_enrollment_token
from cloud.hub.storage import ApiToken
from tests.cloud.hub import helpers
from tests.cloud.hub.http.test_api import feed, upload

CASES_PER_OPERATION = 15
pytestmark = pytest.mark.slow


def _admin_headers(app: Any) -> dict[str, str]:
    """An admin token whose id generated ``/tokens/{id}/revoke`` calls will not hit."""
    with app.extensions["edgekit_hub"].db.session() as s:
        secret = create_api_token(s, "admin", "fuzz")
        s.flush()
        row = s.query(ApiToken).filter_by(name="fuzz").one()
        row.id = 1_234_567
        create_enrollment_token(s, ["lab"])
    return {"Authorization": f"Bearer {secret}"}


def test_no_generated_request_gets_a_5xx(app: Any, client: Any, make_bundle: Any) -> None:
    admin = _admin_headers(app)
    assert upload(client, admin, make_bundle(1)).status_code == 201
    feed(app, helpers.status("cam-1"), helpers.telemetry("cam-1", seq=2))
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    seen: dict[str, int] = {}
    statuses: dict[int, int] = {}
    failures: list[str] = []

    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the OpenAPI document is invalid: {result.err()}"
        operation = result.ok()

        @settings(
            max_examples=CASES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            label = case.operation.label
            resp = case.call(headers=admin)
            seen[label] = seen.get(label, 0) + 1
            statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
            if resp.status_code >= 500:
                failures.append(f"{label}: {resp.status_code} {case.as_curl_command()}")
            elif resp.status_code >= 400:
                body = resp.json()
                error = body.get("error") if isinstance(body, dict) else None
                if not (isinstance(error, dict) and {"code", "message"} <= set(error)):
                    failures.append(f"{label}: {resp.status_code} without the JSON error body")

        run()

    assert not failures, "\n".join(failures[:20])
    paths = {op.split(" ", 1)[1] for op in seen}
    assert len(seen) >= 25 and "/rollouts" in paths, sorted(seen)
    assert sum(seen.values()) >= 250, sum(seen.values())
    # the admin token held: most calls got past authentication
    assert statuses.get(401, 0) < sum(seen.values()) / 4, statuses
    assert sum(n for code, n in statuses.items() if code < 300) >= 50, statuses
