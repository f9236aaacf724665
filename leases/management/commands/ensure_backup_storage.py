"""`manage.py ensure_backup_storage`: create the backup namespace and volume claim when they are missing."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from leases.backup import backup_storage_manifests
from provisioning import cluster
from provisioning.errors import ClusterError


class Command(BaseCommand):
    help = (
        "Create LEASEHOLD_BACKUP_NAMESPACE and LEASEHOLD_BACKUP_PVC in the cluster (server-side apply; "
        "idempotent). `make run` does it on its local control plane; on a real cluster deploy/ makes them."
    )

    def handle(self, *args, **options) -> None:
        for manifest in backup_storage_manifests():
            try:
                cluster.apply(manifest)
            except ClusterError as exc:
                raise CommandError(f"{cluster.ref_of(manifest)}: {exc}") from exc
            self.stdout.write(f"{cluster.ref_of(manifest)}: present")
