"""The viz server fuzzed against its own OpenAPI document with schemathesis.

``create_app().openapi()`` describes every endpoint, the emit body and every refusal (the
guard's 400/401/403/429, the emit's 400/408/413/415/422). Schemathesis generates requests that
fit it and requests that break it, sends them to a real server on a loopback port, and checks
that no answer is a 5xx and that each answer (status, content type, body) is one the document
describes. Examples are few per endpoint so the whole run stays within a few tens of seconds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import Phase, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from dbpulse.viz import VizServer, create_app
from tests.viz._support import FUZZ, ErrorLog, viz_server

TOKEN = "schema-fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

schema = schemathesis.openapi.from_dict(create_app(token=TOKEN).openapi())
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
STATUSES: Counter[int] = Counter()


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[VizServer]:
    # No rate limit here: the fuzz should reach the endpoints, not the 429 (tested elsewhere).
    with (
        ErrorLog("uvicorn.error", "dbpulse.viz", "fastapi") as errors,
        viz_server(token=TOKEN, rate_limit_per_s=0) as server,
    ):
        yield server
        with httpx.Client(base_url=server.url) as http:
            health = http.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok", health.text
    assert not errors.records, errors.messages()
    print(f"\nschemathesis: {sum(STATUSES.values())} requests, statuses {dict(STATUSES)}")
    if len(STATUSES) > 1:  # the whole module ran: fitting and breaking requests were both sent
        assert any(s < 300 for s in STATUSES) and any(400 <= s < 500 for s in STATUSES)


@schema.parametrize()
@settings(FUZZ, max_examples=25, phases=[Phase.explicit, Phase.generate])
def test_no_5xx_and_every_answer_is_documented(case: Any, fuzzed: VizServer) -> None:
    response = case.call(base_url=fuzzed.url, headers=AUTH, timeout=10)
    STATUSES[response.status_code] += 1
    case.validate_response(response, checks=CHECKS)
