"""`Authorization: Token <key>` for the API: hashed, expiring knox tokens whose user's directory
groups are re-read every LEASEHOLD_LDAP_REFRESH_SECONDS."""

from __future__ import annotations

import string

from knox.auth import TokenAuthentication
from rest_framework import exceptions

from .services import directory_refresh


class ApiTokenAuthentication(TokenAuthentication):
    """Knox's token check (digest compare, expiry, active user), then the directory refresh.

    An unknown, expired or ended token, an inactive user and an account the directory no longer
    confirms all get 401 with `WWW-Authenticate: Token`.
    """

    def authenticate_credentials(self, token: bytes):
        # Keys are hex; anything else (bytes that are not UTF-8, a NUL the database would refuse) is
        # simply not a key, and must be a 401 rather than a 500.
        if not token or len(token) > 200 or any(chr(b) not in string.hexdigits for b in token):
            raise exceptions.AuthenticationFailed("Invalid token.")
        return super().authenticate_credentials(token)

    def validate_user(self, auth_token):
        user, token = super().validate_user(auth_token)
        fresh = directory_refresh(user=user)
        if fresh is None:
            raise exceptions.AuthenticationFailed("The directory does not confirm this account.")
        if not fresh.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return fresh, token
