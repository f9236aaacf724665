"""LDAP authentication settings (django-auth-ldap), built from the environment.

Without `LDAP_URI` the service uses local Django accounts only. With it, the rest of the
LDAP settings must be complete: a half-configured integration is an ImproperlyConfigured error.
"""

from __future__ import annotations

import os
from typing import Any

from .env import env, require, secret

GROUP_TYPES = ("groupOfNames", "posixGroup", "groupOfUniqueNames")
# First in every backends list: it refuses a locked-out login before LDAP or the local accounts are
# asked, and the failures of both are counted (django-axes).
AXES_BACKEND = "axes.backends.AxesStandaloneBackend"


def ldap_settings() -> dict[str, Any]:
    """The AUTH_LDAP_* settings and the backends list, or only the model backend without LDAP_URI."""
    uri = os.environ.get("LDAP_URI", "").strip()
    if not uri:
        return {"AUTHENTICATION_BACKENDS": [AXES_BACKEND, "django.contrib.auth.backends.ModelBackend"]}

    import ldap
    from django.core.exceptions import ImproperlyConfigured
    from django_auth_ldap.config import (
        GroupOfNamesType,
        GroupOfUniqueNamesType,
        LDAPSearch,
        PosixGroupType,
    )

    user_base = require("LDAP_USER_BASE", "when LDAP_URI is set")
    group_base = require("LDAP_GROUP_BASE", "when LDAP_URI is set")
    group_type_name = env.str("LDAP_GROUP_TYPE", default="groupOfNames")
    if group_type_name not in GROUP_TYPES:
        raise ImproperlyConfigured(f"LDAP_GROUP_TYPE must be one of {', '.join(GROUP_TYPES)}, not {group_type_name!r}.")
    group_type, group_class = {
        "groupOfNames": (GroupOfNamesType(name_attr="cn"), "groupOfNames"),
        "posixGroup": (PosixGroupType(name_attr="cn"), "posixGroup"),
        "groupOfUniqueNames": (GroupOfUniqueNamesType(name_attr="cn"), "groupOfUniqueNames"),
    }[group_type_name]
    admin_group = env.str("LDAP_ADMIN_GROUP", default="leasehold-admins")
    admin_dn = f"cn={admin_group},{group_base}"
    user_filter = env.str("LDAP_USER_FILTER", default="(uid=%(user)s)")

    return {
        "AUTHENTICATION_BACKENDS": [
            AXES_BACKEND,
            "django_auth_ldap.backend.LDAPBackend",
            # Kept so that a break-glass superuser made with createsuperuser can still log in.
            "django.contrib.auth.backends.ModelBackend",
        ],
        "AUTH_LDAP_SERVER_URI": uri,
        "AUTH_LDAP_BIND_DN": env.str("LDAP_BIND_DN", default=""),
        "AUTH_LDAP_BIND_PASSWORD": secret("LDAP_BIND_PASSWORD", "") or "",
        "AUTH_LDAP_START_TLS": env.bool("LDAP_START_TLS", default=False),
        "AUTH_LDAP_USER_SEARCH": LDAPSearch(user_base, ldap.SCOPE_SUBTREE, user_filter),
        "AUTH_LDAP_USER_ATTR_MAP": {"first_name": "givenName", "last_name": "sn", "email": "mail"},
        "AUTH_LDAP_GROUP_SEARCH": LDAPSearch(group_base, ldap.SCOPE_SUBTREE, f"(objectClass={group_class})"),
        "AUTH_LDAP_GROUP_TYPE": group_type,
        # LDAP groups become Django groups at every login; team-<slug> groups become teams.
        "AUTH_LDAP_MIRROR_GROUPS": True,
        "AUTH_LDAP_ALWAYS_UPDATE_USER": True,
        "AUTH_LDAP_USER_FLAGS_BY_GROUP": {"is_staff": admin_dn, "is_superuser": admin_dn},
        "AUTH_LDAP_CONNECTION_OPTIONS": {ldap.OPT_NETWORK_TIMEOUT: 5, ldap.OPT_TIMEOUT: 10},
        "AUTH_LDAP_CACHE_TIMEOUT": 0,
    }
