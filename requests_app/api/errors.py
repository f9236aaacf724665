"""One exception handler: domain errors become 400/403/409/503, never a 500."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from requests_app.errors import InvalidState, LeaseholdError, NotAllowed, ValidationFailed, public_message


def exception_handler(exc, context):
    if isinstance(exc, ValidationFailed):
        return Response(exc.errors, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, NotAllowed):
        return Response({"detail": str(exc)}, status=status.HTTP_403_FORBIDDEN)
    if isinstance(exc, InvalidState):
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, LeaseholdError | ImproperlyConfigured):
        # Cluster unreachable and the like: the service cannot do this right now. The caller learns
        # only that; the cause (hosts, file paths, settings) goes to the log.
        return Response({"detail": public_message(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
    return drf_exception_handler(exc, context)
