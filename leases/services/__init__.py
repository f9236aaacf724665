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

Order (each imports only those after it): reclaim_pass > restore, reclaim > backups, grace > extension
> opening; reclaim_pass > handover, expiry_notices > report.
"""
