"""`Authorization: Token <key>` for the API: hashed, expiring knox tokens."""

from __future__ import annotations

import string

from knox.auth import TokenAuthentication
from rest_framework import exceptions


class ApiTokenAuthentication(TokenAuthentication):
    """Knox's token check: digest compare, expiry, active user.

    An unknown, expired or ended token and an inactive user get 401 with `WWW-Authenticate: Token`.
    """

    def authenticate_credentials(self, token: bytes):
        # Keys are hex; anything else (bytes that are not UTF-8, a NUL the database would refuse) is
        # simply not a key, and must be a 401 rather than a 500.
        if not token or len(token) > 200 or any(chr(b) not in string.hexdigits for b in token):
            raise exceptions.AuthenticationFailed("Invalid token.")
        return super().authenticate_credentials(token)
