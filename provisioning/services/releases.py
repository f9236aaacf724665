"""Releases of apps: recording each applied release, and day-2 upgrades and rollbacks filed against them."""

from __future__ import annotations

from collections.abc import Iterable

from requests_app.errors import InvalidState, NotAllowed, ValidationFailed
from requests_app.models import Action, Kind, RequestState, Resource, ResourceRequest, ResourceState
from requests_app.selectors import teams_of, user_is_admin
from requests_app.services import request_file_followup
from requests_app.specs import IMAGE_TAG

from ..models import Release
from .plan import PROVISIONED_ACTIONS, render_request


def _record_release(request: ResourceRequest, resource: Resource) -> Release:
    """Keep the configuration this request made the app run (once per request)."""
    existing = Release.objects.filter(request=request).first()
    if existing is not None:
        return existing
    previous = Release.objects.filter(resource=resource).order_by("-number").first()
    rolled_back_from = None
    spec = request.spec
    if request.action == Action.ROLLBACK:
        source = Release.objects.get(resource=resource, number=request.frozen["release"])
        rolled_back_from, spec = source.number, source.spec
    return Release.objects.create(
        resource=resource,
        number=(previous.number + 1) if previous else 1,
        request=request,
        image_tag=spec.get("image_tag", ""),
        spec=spec,
        manifests=render_request(request, lease_start=resource.activated_at, lease_expires=resource.lease_expires_at),
        rolled_back_from=rolled_back_from,
    )


def _check_changeable_app(resource: Resource, actor) -> None:
    if not (user_is_admin(actor) or teams_of(actor).filter(pk=resource.team_id).exists()):
        raise NotAllowed("Only the owner's team can change this app.")
    if resource.kind != Kind.APP:
        raise InvalidState("Only apps have releases to upgrade or roll back.")
    if resource.state != ResourceState.ACTIVE:
        raise InvalidState(f"Only an active app can be changed; this one is {resource.state}.")
    if ResourceRequest.objects.filter(
        resource=resource, action__in=PROVISIONED_ACTIONS[1:], state__in=UNFINISHED_STATES
    ).exists():
        raise InvalidState("Another upgrade or rollback of this app is still under way.")


UNFINISHED_STATES = (RequestState.PENDING_APPROVAL, RequestState.APPROVED, RequestState.PROVISIONING)


def app_upgrade_file(*, resource: Resource, actor, image_tag: str, justification: str) -> ResourceRequest:
    """File an upgrade of an app to another image tag; it goes through approval like any request."""
    _check_changeable_app(resource, actor)
    if not isinstance(image_tag, str) or not IMAGE_TAG.match(image_tag):
        raise ValidationFailed({"image_tag": ["Not an image tag: letters, digits, '_', '.', '-', at most 128."]})
    if image_tag == resource.spec.get("image_tag"):
        raise ValidationFailed({"image_tag": [f"The app already runs {image_tag}."]})
    return request_file_followup(
        requester=actor,
        resource=resource,
        action=Action.UPGRADE,
        lease_days=resource.lease_days,
        justification=justification or "",
        spec={**resource.spec, "image_tag": image_tag},
    )


def app_rollback_file(*, resource: Resource, actor, release: int, justification: str) -> ResourceRequest:
    """File a rollback of an app to an earlier release: its full configuration is applied again."""
    _check_changeable_app(resource, actor)
    target = Release.objects.filter(resource=resource, number=release).first()
    if target is None:
        raise ValidationFailed({"release": [f"This app has no release {release}."]})
    return request_file_followup(
        requester=actor,
        resource=resource,
        action=Action.ROLLBACK,
        lease_days=resource.lease_days,
        justification=justification or "",
        spec=target.spec,
        frozen={**resource.created_by_request.frozen, "release": target.number},
    )


def releases_section(resource: Resource) -> list[dict] | None:
    """An app's releases, newest first: the `releases` part of a resource's representation."""
    if resource.kind != Kind.APP:
        return None
    return [
        {
            "number": r.number,
            "image_tag": r.image_tag,
            "request": str(r.request_id),
            "at": r.created_at,
            "rolled_back_from": r.rolled_back_from,
        }
        # Newest first: Release.Meta orders by (resource, -number), and the lists prefetch them by -number.
        for r in _releases_of(resource)
    ]


def _releases_of(resource: Resource) -> Iterable[Release]:
    listed = getattr(resource, "listed_releases", None)  # prefetched by the lists (ProvisioningConfig)
    return listed if listed is not None else resource.releases.all()
