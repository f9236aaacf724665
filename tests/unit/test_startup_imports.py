"""What a Leasehold process imports when it starts: only what every process needs.

Each `manage.py` command, the reclaimer's CronJob (`reclaim_leases`), the web and the worker start with
`django.setup()`. The Kubernetes client is imported by the functions that talk to a cluster
(provisioning/cluster.py); Django REST framework's serializers and drf-spectacular with the URLconf
that serves the API (the sections are registered by their paths, requests_app/sections.py). Together
they cost about half a second of start-up that a `reclaim_leases --dry-run` never uses (README
"Performance"). Each check runs in a fresh interpreter: this test process has imported them all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Heavy, and needed only by a process that talks to a cluster or serves the API.
HEAVY = [
    "kubernetes",
    "kubernetes.client",
    "urllib3",
    "requests",
    "rest_framework.serializers",
    "rest_framework.views",
    "drf_spectacular.openapi",
    "drf_spectacular.plumbing",
]


def run_after_setup(code: str) -> list[str]:
    """The lines `code` prints after django.setup(), in a fresh interpreter."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")},
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": "test-only-not-a-secret",
    }
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", f"import django, json, sys\ndjango.setup()\n{code}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


def modules_after(code: str) -> set[str]:
    """The names in sys.modules after django.setup() and `code`."""
    return set(json.loads(run_after_setup(f"{code}\nprint(json.dumps(sorted(sys.modules)))")[-1]))


@pytest.mark.parametrize(
    "code",
    [
        "pass",
        # What `manage.py reclaim_leases` imports before its pass (the CronJob's process), and the
        # services and validators that every app's requests go through.
        "import importlib, pkgutil, leases.management.commands.reclaim_leases, leases.services, provisioning.services\n"
        "for package in (leases.services, provisioning.services):\n"
        "    for module in pkgutil.iter_modules(package.__path__):\n"
        "        importlib.import_module(f'{package.__name__}.{module.name}')",
        "import approvals.services, requests_app.services, requests_app.specs, provisioning.renderers",
        # The system checks that `manage.py reclaim_leases` runs before its pass (BaseCommand.execute).
        "from leases.management.commands.reclaim_leases import Command\n"
        "command = Command()\n"
        "assert command.requires_system_checks != '__all__'\n"
        "command.check(tags=command.requires_system_checks)",
    ],
    ids=["django.setup", "reclaim_leases command", "services", "reclaim_leases checks"],
)
def test_starting_django_imports_no_heavy_module(code):
    assert sorted(set(HEAVY) & modules_after(code)) == []


def test_the_modules_left_out_are_imported_where_they_are_used():
    """Talking to a cluster imports the client; the URLconf and the schema import DRF and drf-spectacular.
    (Without this, the test above would also pass with misspelt names.)"""
    loaded = modules_after(
        "from provisioning import cluster, errors\n"
        "try:\n"
        "    cluster.api_client('local')\n"
        "except errors.ClusterNotConfigured:\n"
        "    pass\n"
        "import config.urls\n"
        "from drf_spectacular.generators import SchemaGenerator\n"
        "SchemaGenerator().get_schema(request=None, public=True)"
    )
    assert sorted(set(HEAVY) - loaded) == []


def test_a_web_server_process_imports_them_before_its_first_request():
    """config/wsgi.py (gunicorn's entry point) loads the URLconf and the cluster client as it starts."""
    assert sorted(set(HEAVY) - modules_after("import config.wsgi")) == []


def test_a_worker_imports_the_cluster_client_before_its_pool_starts():
    """The worker_init receiver (run in the worker's main process, before it forks its pool)."""
    lines = run_after_setup(
        "from celery.signals import worker_init\n"
        "from provisioning import tasks\n"
        "receivers = [r() for _, r in worker_init.receivers]\n"
        "print(tasks.load_cluster_client in receivers, 'kubernetes.client' in sys.modules)\n"
        "tasks.load_cluster_client()\n"
        "print('kubernetes.client' in sys.modules)"
    )
    assert lines[-2:] == ["True False", "True"]


def test_the_api_schema_still_describes_the_token_scheme():
    """accounts.schema is registered by the API's views now, not by AppConfig.ready()."""
    lines = run_after_setup(
        "import config.urls\n"
        "from drf_spectacular.generators import SchemaGenerator\n"
        "schema = SchemaGenerator().get_schema(request=None, public=True)\n"
        "print(json.dumps(schema['components']['securitySchemes'].get('tokenAuth')))"
    )
    assert json.loads(lines[-1]) == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": 'Token-based authentication with required prefix "Token"',
    }
