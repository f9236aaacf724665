"""Group membership as the directory says it is now, for decisions.

Django's groups mirror LDAP only at login, so someone removed from `platform-approvers` this morning
would still hold the group in a session that started yesterday. A decision is a control, so it re-reads
the decider's groups from LDAP (when LDAP is an authentication backend) instead of trusting the mirror.
"""

from __future__ import annotations

import logging

from django.conf import settings

logger = logging.getLogger(__name__)

LDAP_BACKEND = "django_auth_ldap.backend.LDAPBackend"


def directory_in_use() -> bool:
    return LDAP_BACKEND in settings.AUTHENTICATION_BACKENDS


def user_group_names(user) -> set[str]:
    """The user's groups as mirrored in Django (what the queue shows)."""
    return set(user.groups.values_list("name", flat=True))


def groups_at_decision_time(user) -> set[str] | None:
    """The user's groups now: re-read from LDAP (and re-mirrored) when LDAP is in use, else Django's.

    None when the directory does not confirm the account (it was removed, or the directory cannot be
    reached): a decision then fails closed.
    """
    if not directory_in_use():
        return user_group_names(user)
    from django_auth_ldap.backend import LDAPBackend

    fresh = LDAPBackend().populate_user(user.get_username())
    if fresh is None:
        logger.warning("The directory did not confirm %s at decision time.", user.get_username())
        return None
    return user_group_names(fresh)
