"""`manage.py reclaim_leases [--dry-run] [--now ISO8601] [--cluster NAME]`: one reclamation pass."""

from __future__ import annotations

from datetime import UTC

from django.core import checks
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from leases.passes import reclaim_pass_recorded
from leases.services.report import ERROR_OUTCOMES
from provisioning.errors import ClusterNotConfigured
from requests_app.models import Cluster


class Command(BaseCommand):
    help = "Run one reclamation pass: expired leases into grace, leases past grace deleted and reclaimed."
    # Before its pass the command checks the models it works on, not every system check: those of the
    # URLconf alone import the whole API (views, serializers, Django REST framework, drf-spectacular),
    # half a second of CPU at every start of a CronJob that runs every 15 minutes, for pages it never
    # serves. The whole configuration is checked where it is deployed: `manage.py check --deploy` in CI
    # and in the image's test (README "Security"). `--skip-checks` skips the model checks too.
    requires_system_checks = [checks.Tags.models]

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Print what the pass would do; change nothing.")
        parser.add_argument("--now", help="Evaluate the pass at this instant (ISO 8601; UTC when no offset is given).")
        parser.add_argument(
            "--cluster",
            metavar="NAME",
            help="Only this cluster's part: grace, backups and reclamation of the leases on it (no notices, "
            "hand-overs or mail: a pass without --cluster does those). Default: every cluster, one after another.",
        )

    def handle(
        self, *args, dry_run: bool = False, now: str | None = None, cluster: str | None = None, **options
    ) -> None:
        instant = None
        if now:
            instant = parse_datetime(now)
            if instant is None:
                raise CommandError(f"--now {now!r} is not an ISO 8601 date and time (e.g. 2026-01-31T12:00:00Z).")
            if timezone.is_naive(instant):
                instant = timezone.make_aware(instant, UTC)
        if cluster is not None and not Cluster.objects.filter(name=cluster).exists():
            # A typing error, not a pass that failed: nothing is recorded.
            known = ", ".join(Cluster.objects.order_by("name").values_list("name", flat=True)) or "none"
            raise CommandError(f"--cluster {cluster!r}: no cluster of that name is registered (registered: {known}).")
        # Recorded in the database (leases.passes): the CronJob's passes are what /metrics tells of.
        try:
            report = reclaim_pass_recorded(origin="command", now=instant, dry_run=dry_run, cluster=cluster)
        except ClusterNotConfigured as exc:
            # Checked before anything changed: no lease moved, no mail sent.
            raise CommandError(f"{exc} Nothing was changed.") from exc
        for line in report.lines():
            self.stdout.write(line)
        # The pass completed (CONTRACT.md §2: exit 0); what it could not do is on stderr, for cron's mail,
        # and was alerted and audited where it matters (failed backups).
        for error in report.of(*ERROR_OUTCOMES):
            self.stderr.write(f"error: {error}")
