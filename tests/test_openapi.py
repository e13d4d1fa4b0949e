"""The OpenAPI document: it lists exactly the app's API routes, and schemathesis finds no
5xx and no answer outside the document when it fuzzes a live server."""

from __future__ import annotations

import json
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from synthbox.web.api.openapi import document
from tests.conftest import Serve, remember_secret

SCHEMA = schemathesis.openapi.from_dict(document())


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    serve = Serve(tmp_path_factory.mktemp("openapi") / "data").start()
    remember_secret(serve.token)
    yield serve
    serve.stop()


def test_the_document_lists_every_api_route_and_no_other(live):
    status, served = live.request("GET", "/api/v1/openapi.json")
    assert status == 200 and served["openapi"] == "3.1.0"
    from synthbox.app import build_engine
    from synthbox.config import load_settings
    from synthbox.web import create_app

    engine = build_engine(load_settings({"data_dir": str(live.data_dir)}, env={}))
    try:
        routes = {(method.lower(), re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}",
                                          rule.rule.removeprefix("/api/v1")))
                  for rule in create_app(engine).url_map.iter_rules()
                  if rule.rule.startswith("/api/v1")
                  for method in rule.methods - {"HEAD", "OPTIONS"}}
    finally:
        engine.close()
    documented = {(method, path) for path, operations in served["paths"].items()
                  for method in operations}
    assert documented == routes
    json.dumps(served)  # plain JSON all the way down


@SCHEMA.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzzing_finds_no_server_error_and_no_undocumented_answer(case, live):
    case.call_and_validate(
        base_url=f"http://127.0.0.1:{live.port}/api/v1",
        headers={"Authorization": f"Bearer {live.token}"},
        checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                response_schema_conformance])
