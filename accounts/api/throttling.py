from __future__ import annotations

import logging

from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle

from accounts.lockout import client_ip

logger = logging.getLogger(__name__)


class LoginRateThrottle(ScopedRateThrottle):
    """DRF's scoped throttle, counted per client address (the same address axes uses) in the cache.

    The rate is read from the settings at each request rather than once at import.
    """

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
        except Exception:
            # The cache (Redis) is down. The lockout, kept in the database, still holds; the throttle
            # lets the call through rather than failing every login.
            logger.warning("The cache is unreachable; the token endpoint is not throttled.", exc_info=True)
            return True

    def get_ident(self, request):
        return client_ip(request) or "unknown"
