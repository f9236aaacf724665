"""An app's page shows the template it was made from and its releases."""

from . import LEASE_KINDS, LeaseKind


def app_page(resource) -> dict:
    from ..selectors import app_template_of

    return {
        "template": app_template_of(resource),
        "releases": resource.releases.order_by("-number"),
        "has_releases": True,
    }


LEASE_KINDS.register("app", LeaseKind("app", page_context=app_page))
