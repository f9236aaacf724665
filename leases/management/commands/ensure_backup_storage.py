"""`manage.py ensure_backup_storage [--cluster NAME]`: create the backup namespace and volume claim when they
are missing (each cluster backs up its databases on its own storage)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from leases.backup import backup_storage_manifests
from provisioning import cluster as k8s
from provisioning.errors import ClusterError, ClusterNotConfigured


class Command(BaseCommand):
    help = (
        "Create LEASEHOLD_BACKUP_NAMESPACE and LEASEHOLD_BACKUP_PVC in the cluster (server-side apply; "
        "idempotent). `make run` does it on its local control plane; on a real cluster deploy/ makes them."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--cluster", metavar="NAME", default=k8s.DEFAULT, help="The cluster (default: default).")

    def handle(self, *args, cluster: str = "", **options) -> None:
        try:
            target = k8s.target_of(cluster or k8s.DEFAULT)
        except ClusterNotConfigured as exc:
            raise CommandError(str(exc)) from exc
        where = "" if target.name == k8s.DEFAULT else f" on cluster {target.name}"
        with k8s.using(target):
            for manifest in backup_storage_manifests():
                try:
                    k8s.apply(manifest)
                except ClusterError as exc:
                    raise CommandError(f"{k8s.ref_of(manifest)}{where}: {exc}") from exc
                self.stdout.write(f"{k8s.ref_of(manifest)}: present{where}")
