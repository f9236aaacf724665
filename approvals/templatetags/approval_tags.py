"""Template helpers for the approval card on the request page."""

from __future__ import annotations

from django import template

from approvals.selectors import queue_overview, steps_decidable_by

register = template.Library()


@register.simple_tag
def decidable_steps(user, req) -> dict[str, str]:
    """{step id: whom the user would act for ("" in their own name)} for the steps of `req` they may decide now."""
    if user is None or not user.is_authenticated:
        return {}
    return {str(s.pk): getattr(s, "acting_for", "") for s in steps_decidable_by(user).filter(request_id=req.pk)}


@register.filter
def get_item(mapping: dict, key) -> object:
    return mapping.get(str(key)) if isinstance(mapping, dict) else None


@register.filter
def has_key(mapping: dict, key) -> bool:
    return isinstance(mapping, dict) and str(key) in mapping


@register.inclusion_tag("approvals/_waiting.html", takes_context=True)
def approvals_waiting(context) -> dict:
    """The home page's card for approvers: how many steps wait for them and since when the oldest."""
    user = context["request"].user
    return {"overview": queue_overview(user)}
