"""`manage.py check_clusters [NAME ...]`: check the registered clusters now and record their health."""

from __future__ import annotations

from django.core import checks
from django.core.management.base import BaseCommand, CommandError

from provisioning.services.health import ClusterHealth, clusters_check
from requests_app.models import Cluster


def health_line(health: ClusterHealth) -> str:
    """One cluster, one line: `prod-a  up  nodes cpu 96, memory 384Gi` or `prod-b  down since …: why`."""
    if health.healthy:
        nodes = ", ".join(
            f"{key} {value}" for key, value in (("cpu", health.nodes_cpu), ("memory", health.nodes_memory)) if value
        )
        state = f"up  nodes {nodes}" if nodes else "up  nodes not readable"
    else:
        since = f" since {health.unhealthy_since:%Y-%m-%d %H:%M:%S} UTC" if health.unhealthy_since else ""
        state = f"down{since}: {health.detail}"
    change = f"  ({health.change})" if health.change else ""
    return f"{health.name}  {state}{change}"


class Command(BaseCommand):
    help = "Check the registered clusters (all, or those named) and record their health; one line per cluster."
    # The models it writes, not the URLconf's checks (see reclaim_leases).
    requires_system_checks = [checks.Tags.models]

    def add_arguments(self, parser) -> None:
        parser.add_argument("names", nargs="*", metavar="NAME", help="Check only these clusters.")

    def handle(self, *args, names: list[str], **options) -> None:
        unknown = sorted(set(names) - set(Cluster.objects.filter(name__in=names).values_list("name", flat=True)))
        if unknown:
            raise CommandError(f"No cluster named {', '.join(unknown)} is registered.")
        results = clusters_check(names=names)
        if not results:
            self.stdout.write("No cluster is registered.")
        for health in results:
            self.stdout.write(health_line(health))
