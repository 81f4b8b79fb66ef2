"""Property tests of the API against its own OpenAPI schema (schemathesis): for generated
requests, valid and not, no endpoint answers 5xx and every response matches what the schema
says, status codes and content types included."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from django.contrib.auth.models import User
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings as hypothesis_settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.web.deployment import Deployment

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def token(deployment: Deployment) -> str:
    user = User.objects.create_user("fuzz", password="pw-fuzz-123")
    return Token.objects.create(user=user).key


# Loading the schema needs no database: the schema view reads only the URLconf and the views.
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())


@schema.include(path_regex=r"^/api/v1/").parametrize()
@hypothesis_settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_keeps_its_schema(case: Any, token: str) -> None:
    if _number((case.query or {}).get("wait"), 0.1, 30):
        case.query["wait"] = "0.1"  # a valid long poll, kept short: nothing arrives meanwhile
    case.call_and_validate(
        headers={"Authorization": f"Token {token}"},
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )


def _number(value: Any, low: float, high: float) -> bool:
    try:
        return low < float(value) <= high
    except (TypeError, ValueError):
        return False
