"""Mail settings from the environment: EMAIL_URL or Django's EMAIL_* (CONTRACT.md §1), secrets from files,
and a half-configured or contradictory setup refused with the variable's name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.email import CONSOLE_BACKEND, FILE_BACKEND, SMTP_BACKEND, email_settings

ROOT = Path(__file__).resolve().parents[2]


def test_nothing_set_means_the_console_backend_with_djangos_defaults():
    assert email_settings({}) == {
        "EMAIL_BACKEND": CONSOLE_BACKEND,
        "EMAIL_HOST": "localhost",
        "EMAIL_PORT": 25,
        "EMAIL_HOST_USER": "",
        "EMAIL_HOST_PASSWORD": "",
        "EMAIL_USE_TLS": False,
        "EMAIL_USE_SSL": False,
        "EMAIL_TIMEOUT": 10,
        "DEFAULT_FROM_EMAIL": "leasehold@localhost",
    }


def test_the_file_backend_is_configured_by_email_backend_and_email_file_path(tmp_path):
    config = email_settings({"EMAIL_BACKEND": FILE_BACKEND, "EMAIL_FILE_PATH": str(tmp_path)})
    assert (config["EMAIL_BACKEND"], config["EMAIL_FILE_PATH"]) == (FILE_BACKEND, str(tmp_path))


def test_every_smtp_variable_is_read():
    config = email_settings(
        {
            "EMAIL_BACKEND": SMTP_BACKEND,
            "EMAIL_HOST": "smtp.example.org",
            "EMAIL_PORT": "587",
            "EMAIL_HOST_USER": "leasehold",
            "EMAIL_HOST_PASSWORD": "s3cret",
            "EMAIL_USE_TLS": "true",
            "EMAIL_TIMEOUT": "5",
            "DEFAULT_FROM_EMAIL": "Leasehold <leasehold@example.org>",
        }
    )
    assert config == {
        "EMAIL_BACKEND": SMTP_BACKEND,
        "EMAIL_HOST": "smtp.example.org",
        "EMAIL_PORT": 587,
        "EMAIL_HOST_USER": "leasehold",
        "EMAIL_HOST_PASSWORD": "s3cret",
        "EMAIL_USE_TLS": True,
        "EMAIL_USE_SSL": False,
        "EMAIL_TIMEOUT": 5,
        "DEFAULT_FROM_EMAIL": "Leasehold <leasehold@example.org>",
    }


def test_naming_a_mail_server_without_a_backend_means_smtp():
    config = email_settings({"EMAIL_HOST": "smtp.example.org", "EMAIL_USE_SSL": "yes", "EMAIL_PORT": "465"})
    assert (config["EMAIL_BACKEND"], config["EMAIL_USE_SSL"], config["EMAIL_PORT"]) == (SMTP_BACKEND, True, 465)


def test_the_password_may_come_from_a_file(tmp_path):
    secret = tmp_path / "password"
    secret.write_text("from-a-secret\n")
    config = email_settings({"EMAIL_HOST": "smtp.example.org", "EMAIL_HOST_PASSWORD_FILE": str(secret)})
    assert config["EMAIL_HOST_PASSWORD"] == "from-a-secret"


def test_an_unreadable_password_file_is_named(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="EMAIL_HOST_PASSWORD_FILE"):
        email_settings({"EMAIL_HOST": "smtp.example.org", "EMAIL_HOST_PASSWORD_FILE": str(tmp_path / "missing")})


def test_email_url_gives_the_server_in_one_variable():
    config = email_settings({"EMAIL_URL": "smtp+ssl://leasehold:pw@smtp.example.org:465", "EMAIL_TIMEOUT": "3"})
    assert config == {
        "EMAIL_BACKEND": SMTP_BACKEND,
        "EMAIL_HOST": "smtp.example.org",
        "EMAIL_PORT": 465,
        "EMAIL_HOST_USER": "leasehold",
        "EMAIL_HOST_PASSWORD": "pw",
        "EMAIL_USE_TLS": False,
        "EMAIL_USE_SSL": True,
        "EMAIL_TIMEOUT": 3,
        "DEFAULT_FROM_EMAIL": "leasehold@localhost",
    }


def test_email_url_may_leave_the_password_to_a_file(tmp_path):
    secret = tmp_path / "password"
    secret.write_text("pw")
    config = email_settings(
        {"EMAIL_URL": "smtp+tls://leasehold@smtp.example.org:587", "EMAIL_HOST_PASSWORD_FILE": str(secret)}
    )
    assert (config["EMAIL_HOST_PASSWORD"], config["EMAIL_USE_TLS"], config["EMAIL_PORT"]) == ("pw", True, 587)


def test_a_flag_in_email_urls_query_is_read_as_a_flag():
    assert email_settings({"EMAIL_URL": "smtp://smtp.example.org?email_use_tls=false"})["EMAIL_USE_TLS"] is False
    assert email_settings({"EMAIL_URL": "smtp://smtp.example.org?email_use_tls=1"})["EMAIL_USE_TLS"] is True


def test_email_url_can_name_the_file_backend():
    config = email_settings({"EMAIL_URL": "filemail:///var/spool/leasehold"})
    assert (config["EMAIL_BACKEND"], config["EMAIL_FILE_PATH"]) == (FILE_BACKEND, "/var/spool/leasehold")


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"EMAIL_BACKEND": FILE_BACKEND}, "EMAIL_FILE_PATH must be set"),
        ({"EMAIL_URL": "filemail://"}, "EMAIL_FILE_PATH must be set"),
        ({"EMAIL_FILE_PATH": "/tmp/mail"}, "EMAIL_FILE_PATH is set but EMAIL_BACKEND"),
        (
            {"EMAIL_HOST": "smtp.example.org", "EMAIL_USE_TLS": "1", "EMAIL_USE_SSL": "1"},
            "EMAIL_USE_TLS and EMAIL_USE_SSL",
        ),
        ({"EMAIL_URL": "smtp+tls://smtp.example.org?email_use_ssl=true"}, "EMAIL_USE_TLS and EMAIL_USE_SSL"),
        ({"EMAIL_USE_TLS": "ture"}, "EMAIL_USE_TLS must be true or false"),
        ({"EMAIL_PORT": "smtp"}, "EMAIL_PORT must be a whole number"),
        ({"EMAIL_TIMEOUT": "0"}, "EMAIL_TIMEOUT must be a whole number"),
        ({"EMAIL_URL": "smtp://smtp.example.org", "EMAIL_HOST": "other.example.org"}, "EMAIL_URL and EMAIL_HOST"),
        ({"EMAIL_URL": "smtp://u:pw@smtp.example.org", "EMAIL_HOST_PASSWORD": "pw2"}, "EMAIL_URL has a password"),
        ({"EMAIL_URL": "gopher://smtp.example.org"}, "gopher"),
    ],
)
def test_a_half_configured_or_contradictory_setup_is_refused_by_name(environ, named):
    with pytest.raises(ImproperlyConfigured, match=named):
        email_settings(environ)


def settings_process(**environ: str) -> subprocess.CompletedProcess:
    """Load config.settings in a fresh interpreter with exactly these mail variables in its environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMAIL_", "DEFAULT_FROM_EMAIL"))}
    env.update({"SECRET_KEY": "test-only", "DJANGO_SETTINGS_MODULE": "config.settings", **environ})
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.EMAIL_BACKEND, getattr(s, 'EMAIL_FILE_PATH', None), s.EMAIL_HOST, s.EMAIL_PORT, "
        "s.EMAIL_USE_TLS, s.EMAIL_TIMEOUT)"
    )
    return subprocess.run(  # noqa: S603  (our own interpreter)
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_the_settings_module_reads_the_file_backend_from_the_environment(tmp_path):
    done = settings_process(EMAIL_BACKEND=FILE_BACKEND, EMAIL_FILE_PATH=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [FILE_BACKEND, str(tmp_path), "localhost", "25", "False", "10"]


def test_the_settings_module_reads_smtp_variables_from_the_environment():
    done = settings_process(EMAIL_HOST="smtp.example.org", EMAIL_PORT="2525", EMAIL_USE_TLS="true", EMAIL_TIMEOUT="4")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [SMTP_BACKEND, "None", "smtp.example.org", "2525", "True", "4"]


def test_the_settings_module_refuses_a_file_backend_without_a_path():
    done = settings_process(EMAIL_BACKEND=FILE_BACKEND)
    assert done.returncode != 0
    assert "ImproperlyConfigured: EMAIL_FILE_PATH must be set" in done.stderr
