"""Group membership as the directory says it is now, for decisions.

Django's groups mirror LDAP only at login, so someone removed from `platform-approvers` this morning
would still hold the group in a session that started yesterday. A decision is a control, so it re-reads
the decider's groups from LDAP (when LDAP is an authentication backend) instead of trusting the mirror.
"""

from __future__ import annotations

import logging

from requests_app.directory import directory_in_use, directory_reread, user_group_names

logger = logging.getLogger(__name__)


def groups_at_decision_time(user) -> set[str] | None:
    """The user's groups now: re-read from LDAP (and re-mirrored) when LDAP is in use, else Django's.

    None when the directory does not confirm the account (it was removed, or the directory cannot be
    reached): a decision then fails closed.
    """
    if not directory_in_use():
        return user_group_names(user)
    fresh = directory_reread(user)
    if fresh is None:
        logger.warning("The directory did not confirm %s at decision time.", user.get_username())
        return None
    return user_group_names(fresh)
