"""Words for pages and emails: kinds with their article, field labels, and times a person reads at a glance.

`{% load leasehold_names %}`, then `{{ r.kind|a_kind }}` ("an app"), `{{ key|field_label }}` ("CPU request"),
`{{ r.created_at|ago }}` ("just now", "3 hours ago"), `{{ lease.expires_at|from_now }}` ("in 6 days").
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django import template
from django.contrib.humanize.templatetags.humanize import naturaltime
from django.utils import timezone
from django.utils.timesince import timeuntil

from requests_app import names

register = template.Library()

# Under this, "0 minutes" is what Django's time filters would say: people read "just now".
JUST_NOW = timedelta(minutes=1)

register.filter("kind_noun", names.kind_noun)
register.filter("kind_title", names.kind_title)
register.filter("a_kind", names.a_kind)
register.filter("field_label", names.field_label)
register.filter("action_verb", names.action_verb)
register.filter("words", names.words)


@register.filter
def ago(value: datetime | None) -> str:
    """Says "just now" for the last minute, else what Django's `naturaltime` says ("3 hours ago")."""
    if not value:
        return ""
    if timezone.now() - value < JUST_NOW:
        return "just now"
    return naturaltime(value)


@register.filter
def from_now(value: datetime | None, now: datetime | None = None) -> str:
    """Says "in 6 days"; "now" once less than a minute is left (or the time has passed)."""
    if not value:
        return ""
    now = now or timezone.now()
    if value - now < JUST_NOW:
        return "now"
    return f"in {timeuntil(value, now, depth=1)}"
