"""Signals of the bottom layer that higher apps connect to in their AppConfig.ready()."""

from django.dispatch import Signal

# Sent inside the transaction that filed a request, after it was saved. Args: request.
request_submitted = Signal()
