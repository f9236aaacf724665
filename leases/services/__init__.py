"""Leases' writes, one module per concern (STYLE.md's `services`, as a package). Import from the module
that owns a name; this package re-exports nothing.

- `opening`: opening a lease, and the database's clock
- `extension`: extensions, expiry corrections, fulfilling extension requests
- `report`: the report of a reclamation pass
- `expiry_notices`: sending expiry notices (their wording is `leases.notices`)
- `handover`: leases of departed owners go to their team
- `grace`: the pass's claim on a lease, grace and quarantine
- `backups`: backups before deletion (the Job's manifests are `leases.backup`)
- `reclaim`: reclaiming a lease, and releasing a resource early
- `reclaim_pass`: the pass itself, its dry run, and following leases still going away
- `restore`: restoring a reclaimed database

Imports between them go one way (no cycles): opening, report and backups at the bottom; extension
-> opening; grace -> extension; handover, expiry_notices -> report; restore -> backups, extension;
reclaim -> backups, grace; reclaim_pass (the top) -> all the others but backups.
"""
