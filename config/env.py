"""One helper for reading configuration from the environment (django-environ), with `*_FILE` secrets."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

env = environ.Env()


def secret(name: str, default: str | None = None, *, environ: Mapping[str, str] | None = None) -> str | None:
    """Return `name` from the environment (or `environ`), or the contents of the file named by `<name>_FILE`."""
    environ = os.environ if environ is None else environ
    path = environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path} cannot be read: {exc}") from exc
    return environ.get(name, default)


def require(name: str, because: str) -> str:
    """Return `name` from the environment or raise ImproperlyConfigured naming what is missing."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise ImproperlyConfigured(f"{name} must be set {because}.")
    return value
