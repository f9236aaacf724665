"""`manage.py reclaim_leases`: what it refuses before a pass starts (the passes: tests/integration/test_reclaim.py)."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db


def test_a_bad_now_is_a_clear_error():
    with pytest.raises(CommandError, match="not an ISO 8601"):
        call_command("reclaim_leases", "--now", "yesterday")
