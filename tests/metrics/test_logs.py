"""Structured logs: JSON lines (LEASEHOLD_LOG_FORMAT=json) with the request id, the actor and the resource
(or request) on every line that concerns one, in web requests and in Celery tasks."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.utils.module_loading import import_string

from provisioning.tasks import provision_request
from requests_app.logs import ContextFilter
from tests.faults.proxy import Rule

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


class JsonLog:
    """The root logger's lines, formatted as settings.LOGGING's `json` formatter and filter do."""

    def __init__(self) -> None:
        options = dict(settings.LOGGING["formatters"]["json"])
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(import_string(options.pop("()"))(**options))
        self.handler.addFilter(ContextFilter())

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]


@pytest.fixture
def json_log():
    log = JsonLog()
    root = logging.getLogger()
    root.addHandler(log.handler)
    yield log
    root.removeHandler(log.handler)


def test_a_web_request_keeps_the_ingress_request_id_and_its_lines_name_the_actor_and_the_resource(
    api, requester, json_log
):
    missing = uuid.uuid4()
    response = api.as_(requester).get(f"/api/v1/resources/{missing}/", HTTP_X_REQUEST_ID="ingress-abc.123")
    assert response.status_code == 404
    assert response["X-Request-ID"] == "ingress-abc.123"
    (line,) = [line for line in json_log.lines() if line["logger"] == "django.request"]
    assert line["message"].startswith("Not Found")
    assert line["level"] == "WARNING" and line["time"]
    assert line["request_id"] == "ingress-abc.123"
    assert line["actor"] == "dana"
    assert line["resource_id"] == str(missing)


def test_a_request_without_a_usable_request_id_gets_one_of_ours(client, json_log):
    first = client.get("/healthz")
    second = client.get("/healthz", HTTP_X_REQUEST_ID='evil" \nid')
    for response in (first, second):
        assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])
    assert first["X-Request-ID"] != second["X-Request-ID"]


def test_a_web_page_names_the_session_user_and_the_resource(client, requester, json_log):
    client.force_login(requester)
    missing = uuid.uuid4()
    response = client.get(f"/resources/{missing}/")
    assert response.status_code == 404
    (line,) = [line for line in json_log.lines() if line["logger"] == "django.request"]
    assert line["actor"] == "dana" and line["resource_id"] == str(missing)
    assert line["request_id"] == response["X-Request-ID"]


def test_an_anonymous_request_names_no_actor(client, json_log):
    response = client.get(f"/api/v1/requests/{uuid.uuid4()}/")
    assert response.status_code == 401
    lines = [line for line in json_log.lines() if line["logger"] == "django.request"]
    assert lines and all(line["actor"] == "" and line["resource_request_id"] for line in lines)


def test_a_provisioning_task_names_its_request_and_resource_on_every_line(
    approved_namespace, through_the_proxy, json_log
):
    through_the_proxy.add(Rule("status", method="PATCH", status=503, retry_after=0, first=1))
    request = approved_namespace()
    result = provision_request.apply(args=[str(request.pk)])
    request.refresh_from_db()
    assert request.state == "active"
    lines = [line for line in json_log.lines() if line["logger"].startswith(("provisioning", "celery"))]
    assert any("retrying" in line["message"] for line in lines)  # the 503, retried in-process
    for line in lines:
        assert line["request_id"] == result.id, line
        assert line["resource_request_id"] == str(request.pk), line
        assert line["resource_id"] == str(request.resource_id), line


def test_the_log_format_setting_turns_every_line_into_json(tmp_path):
    script = "import django, logging; django.setup(); logging.getLogger('leasehold.test').warning('hello %s', 'there')"
    env = {
        **os.environ,
        "SECRET_KEY": "test-only",
        "LEASEHOLD_LOG_FORMAT": "json",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stderr.strip().splitlines()[-1])
    assert line["message"] == "hello there" and line["logger"] == "leasehold.test" and line["level"] == "WARNING"
    assert {"time", "request_id", "actor", "resource_id", "resource_request_id"} <= set(line)

    env["LEASEHOLD_LOG_FORMAT"] = "plain"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.stderr.strip().endswith("WARNING leasehold.test hello there")

    env["LEASEHOLD_LOG_FORMAT"] = "yaml"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "LEASEHOLD_LOG_FORMAT must be plain or json" in done.stderr
