"""The live progress card on the request page: a polite live region that stays in the page while htmx
replaces only its body, so screen readers hear each change."""

from __future__ import annotations

import re
import uuid
from types import SimpleNamespace

from django.template.loader import render_to_string


def card(live: bool) -> str:
    progress = {"live": live, "state": "provisioning", "phase_display": "Applying", "attempts": 1, "steps": []}
    return render_to_string(
        "provisioning/_progress.html", {"req": SimpleNamespace(pk=uuid.uuid4()), "progress": progress}
    )


def test_the_progress_card_is_a_polite_live_region_that_polls_for_its_body_only():
    html = card(live=True)
    opening = re.search(r'<div class="card" id="provisioning-progress"[^>]*>', html).group(0)
    assert 'aria-live="polite"' in opening
    assert 'hx-target="#provisioning-progress-body"' in opening and 'hx-select="#provisioning-progress-body"' in opening
    assert 'hx-trigger="every 2s"' in opening
    # The body the next answer is picked from is inside the card, so the region itself is never replaced.
    assert html.index('id="provisioning-progress-body"') > html.index(opening)


def test_a_finished_card_stays_a_live_region_and_stops_polling():
    html = card(live=False)
    assert 'aria-live="polite"' in html and "hx-get" not in html
