"""The API's OpenAPI document matches the app's routes, is valid OpenAPI, and the app holds to it
under schemathesis' property-based fuzzing: no 5xx, only documented status codes, bodies and
content types as documented (issue 16: no input reaches a 500)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from schemathesis import GenerationMode, checks
from schemathesis.specs.openapi.definitions import OPENAPI_31

from app import search
from app.api.openapi import DOCUMENT
from app.extensions import db
from app.models import User
from app.posts import write_post
from app.sansio.inputs import refused_in
from tests.conftest import make_user

IGNORED_METHODS = {"HEAD", "OPTIONS"}
# Enough examples per operation to reach every branch the schema describes, small enough for CI.
EXAMPLES = 60


def app_operations(app) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule.removeprefix("/api"))
        found |= {(path, method.lower()) for method in rule.methods - IGNORED_METHODS}
    return found


def documented_operations() -> set[tuple[str, str]]:
    return {(path, method) for path, item in DOCUMENT["paths"].items() for method in item}


def test_every_api_route_is_documented_and_nothing_else(app):
    assert app_operations(app) == documented_operations()


def test_the_document_is_valid_openapi():
    Draft202012Validator(OPENAPI_31).validate(DOCUMENT)
    for schema in DOCUMENT["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


def test_the_document_is_served(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.json == DOCUMENT


@pytest.fixture
def fuzzed_app(app, redis):
    """The app with one user, a post and the search index; each request carries a fresh token (one may revoke it)."""
    with app.app_context():
        user = make_user("fuzz")
        write_post(user, "a post to find")
        search.rebuild(lambda done, total: None)
        user_id = user.id
    app.config["MAX_ACTIVE_TASKS_PER_USER"] = 1_000_000
    return app, user_id


def fresh_token(app, user_id: int) -> str:
    with app.app_context():
        raw, _ = db.session.get(User, user_id).issue_token(3600)
        db.session.commit()
    return raw


FUZZ_CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


# Text no database stores and a header cannot carry: appended to every string the fuzzer sends
# in a body, the query or the path (it draws them too, but too rarely to count on).
POISONS = st.sampled_from(["", "", "\x00", "\ud800", "\r\n", "\u202e\u200b"])


def poisoned(value: Any, poison: str) -> Any:
    if isinstance(value, str):
        return value + poison
    if isinstance(value, dict):
        return {key: poisoned(item, poison) for key, item in value.items()}
    if isinstance(value, list):
        return [poisoned(item, poison) for item in value]
    return value


def fuzzed_operations() -> list[tuple[str, str, GenerationMode]]:
    # Negative data needs something to negate: operations without inputs have only valid requests.
    found = []
    for path, method in sorted(documented_operations()):
        operation = DOCUMENT["paths"][path][method]
        takes_input = "parameters" in operation or "requestBody" in operation
        found += [
            (path, method, mode) for mode in GenerationMode if takes_input or mode is GenerationMode.POSITIVE
        ]
    return found


@pytest.mark.parametrize(("path", "method", "mode"), fuzzed_operations())
def test_the_api_holds_to_its_document_under_fuzzing(fuzzed_app, path, method, mode):
    app, user_id = fuzzed_app
    operation = schemathesis.openapi.from_wsgi("/api/openapi.json", app)[path][method.upper()]
    authenticated = (
        DOCUMENT["paths"][path][method].get("security", DOCUMENT["security"]) == DOCUMENT["security"]
    )

    @given(case=operation.as_strategy(mode), poison=POISONS)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def holds(case, poison: str) -> None:
        if poison:
            for part in ("body", "query", "path_parameters"):
                value = getattr(case, part, None)
                # A URL cannot carry a lone surrogate at all (it has no UTF-8 encoding): JSON can.
                sendable = part == "body" or not refused_in(poison.replace("\x00", ""))
                if sendable and isinstance(value, dict | list | str):
                    setattr(case, part, poisoned(value, poison))
        headers = {"Authorization": f"Bearer {fresh_token(app, user_id)}"} if authenticated else None
        case.call_and_validate(headers=headers, checks=FUZZ_CHECKS)

    holds()
