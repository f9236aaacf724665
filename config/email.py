"""Outgoing mail settings, built from the environment (CONTRACT.md §1: `EMAIL_URL` or Django's `EMAIL_*`).

`EMAIL_URL` (django-environ's form, e.g. `smtp+tls://user@smtp.example.org:587`, `filemail:///var/mail`)
gives the backend and the server in one variable; otherwise Django's own `EMAIL_*` variables are read, with
Django's defaults. Either way `EMAIL_HOST_PASSWORD` may come from `EMAIL_HOST_PASSWORD_FILE`, and
`EMAIL_TIMEOUT` and `DEFAULT_FROM_EMAIL` apply. A half-configured or contradictory mail setup is an
ImproperlyConfigured error naming the variable: a notice that silently goes nowhere is worse than a
service that does not start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

from .env import secret

CONSOLE_BACKEND = "django.core.mail.backends.console.EmailBackend"
SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
FILE_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
# What EMAIL_URL already says; giving one of these as well leaves it unclear which one is meant.
SAID_BY_EMAIL_URL = (
    "EMAIL_BACKEND",
    "EMAIL_HOST",
    "EMAIL_PORT",
    "EMAIL_HOST_USER",
    "EMAIL_FILE_PATH",
    "EMAIL_USE_TLS",
    "EMAIL_USE_SSL",
)
TRUE = frozenset(environ.Env.BOOLEAN_TRUE_STRINGS)
FALSE = frozenset(("false", "off", "no", "n", "0", ""))


def _str(environ_: Mapping[str, str], name: str, default: str = "") -> str:
    return environ_.get(name, default).strip()


def _bool(environ_: Mapping[str, str], name: str) -> bool:
    value = _str(environ_, name).lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    # A typo such as EMAIL_USE_TLS=ture must not quietly send in clear text.
    raise ImproperlyConfigured(f"{name} must be true or false, not {environ_[name]!r}.")


def _int(environ_: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    value = _str(environ_, name)
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        number = low - 1
    if not low <= number <= high:
        raise ImproperlyConfigured(f"{name} must be a whole number from {low} to {high}, not {value!r}.")
    return number


def email_settings(environ_: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The EMAIL_* and DEFAULT_FROM_EMAIL settings for `environ_` (the process environment by default)."""
    environ_ = os.environ if environ_ is None else environ_
    url = _str(environ_, "EMAIL_URL")
    password = secret("EMAIL_HOST_PASSWORD", "", environ=environ_) or ""
    if url:
        both = [name for name in SAID_BY_EMAIL_URL if _str(environ_, name)]
        if both:
            raise ImproperlyConfigured(
                f"EMAIL_URL and {', '.join(both)} are both set: give the mail server either as EMAIL_URL "
                "or as Django's EMAIL_* variables."
            )
        try:
            parsed = environ.Env.email_url_config(url)
        except ValueError as exc:  # a port that is not a number
            raise ImproperlyConfigured(f"EMAIL_URL is not a valid mail URL: {exc}") from exc
        config: dict[str, Any] = {
            "EMAIL_BACKEND": parsed["EMAIL_BACKEND"],
            "EMAIL_HOST": parsed["EMAIL_HOST"] or "localhost",
            "EMAIL_PORT": parsed["EMAIL_PORT"] or 25,
            "EMAIL_HOST_USER": parsed["EMAIL_HOST_USER"] or "",
            "EMAIL_HOST_PASSWORD": parsed["EMAIL_HOST_PASSWORD"] or "",
            # `?email_use_tls=false` arrives as the text "false", which must not count as on.
            "EMAIL_USE_TLS": _bool({"EMAIL_URL": str(parsed.get("EMAIL_USE_TLS", ""))}, "EMAIL_URL"),
            "EMAIL_USE_SSL": _bool({"EMAIL_URL": str(parsed.get("EMAIL_USE_SSL", ""))}, "EMAIL_URL"),
        }
        if parsed["EMAIL_FILE_PATH"]:
            config["EMAIL_FILE_PATH"] = "/" + parsed["EMAIL_FILE_PATH"].lstrip("/")
        if password:
            if config["EMAIL_HOST_PASSWORD"]:
                raise ImproperlyConfigured(
                    "EMAIL_URL has a password and EMAIL_HOST_PASSWORD (or EMAIL_HOST_PASSWORD_FILE) is set too: "
                    "give it once."
                )
            # A password kept in a file (a mounted Secret) need not be written into EMAIL_URL.
            config["EMAIL_HOST_PASSWORD"] = password
    else:
        host = _str(environ_, "EMAIL_HOST")
        # As in Django, naming a mail server means SMTP; with nothing set, mail goes to the console.
        backend = _str(environ_, "EMAIL_BACKEND") or (SMTP_BACKEND if host else CONSOLE_BACKEND)
        config = {
            "EMAIL_BACKEND": backend,
            "EMAIL_HOST": host or "localhost",
            "EMAIL_PORT": _int(environ_, "EMAIL_PORT", 25, low=1, high=65535),
            "EMAIL_HOST_USER": _str(environ_, "EMAIL_HOST_USER"),
            "EMAIL_HOST_PASSWORD": password,
            "EMAIL_USE_TLS": _bool(environ_, "EMAIL_USE_TLS"),
            "EMAIL_USE_SSL": _bool(environ_, "EMAIL_USE_SSL"),
        }
        file_path = _str(environ_, "EMAIL_FILE_PATH")
        if file_path:
            if backend != FILE_BACKEND:
                raise ImproperlyConfigured(
                    f"EMAIL_FILE_PATH is set but EMAIL_BACKEND is {backend}, which ignores it: "
                    f"set EMAIL_BACKEND={FILE_BACKEND} or unset EMAIL_FILE_PATH."
                )
            config["EMAIL_FILE_PATH"] = file_path

    if config["EMAIL_BACKEND"] == FILE_BACKEND and not config.get("EMAIL_FILE_PATH"):
        raise ImproperlyConfigured(
            "EMAIL_FILE_PATH must be set when EMAIL_BACKEND is the file backend (the directory mail is written to)."
        )
    if config["EMAIL_USE_TLS"] and config["EMAIL_USE_SSL"]:
        raise ImproperlyConfigured(
            "EMAIL_USE_TLS and EMAIL_USE_SSL are both on: use one (TLS: STARTTLS, usually port 587; "
            "SSL: implicit TLS, usually port 465)."
        )
    # A hung mail server must not stall the request or pass that sends a notice.
    config["EMAIL_TIMEOUT"] = _int(environ_, "EMAIL_TIMEOUT", 10, low=1, high=3600)
    config["DEFAULT_FROM_EMAIL"] = _str(environ_, "DEFAULT_FROM_EMAIL") or "leasehold@localhost"
    return config
