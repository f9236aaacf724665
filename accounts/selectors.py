"""Reads of the accounts app: where an account comes from (the directory or the local database)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

LDAP_BACKEND = "django_auth_ldap.backend.LDAPBackend"


def directory_in_use() -> bool:
    return LDAP_BACKEND in settings.AUTHENTICATION_BACKENDS


def is_directory_account(user: AbstractBaseUser) -> bool:
    """Accounts that LDAP made have no usable local password; local (break-glass) accounts do."""
    return directory_in_use() and not user.has_usable_password()
