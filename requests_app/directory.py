"""The directory (LDAP) as it says it is now: the one place that re-reads a user from it.

Django's groups mirror LDAP only at login, so someone removed from a group this morning still holds it
in a session (or an API token) that started yesterday. A control — a token's access (accounts), a
decision (approvals), a hand-over of a departed owner's resources (leases) — re-reads the user from
LDAP when LDAP is an authentication backend, instead of trusting the mirror.
"""

from __future__ import annotations

from django.conf import settings

LDAP_BACKEND = "django_auth_ldap.backend.LDAPBackend"


def directory_in_use() -> bool:
    return LDAP_BACKEND in settings.AUTHENTICATION_BACKENDS


def is_directory_account(user) -> bool:
    """Accounts that LDAP made have no usable local password; local (break-glass) accounts do."""
    return directory_in_use() and not user.has_usable_password()


def user_group_names(user) -> set[str]:
    """The user's groups as mirrored in Django."""
    return set(user.groups.values_list("name", flat=True))


def directory_reread(user):
    """The user re-read from LDAP, its groups and flags mirrored into Django again; None when the
    directory does not confirm the account (it was removed, or the directory cannot be reached)."""
    from django_auth_ldap.backend import LDAPBackend  # imported where the directory is asked, not at start

    return LDAPBackend().populate_user(user.get_username())
