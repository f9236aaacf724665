"""A database is dumped (pg_dump) before deletion, and a restore fills the re-created one from the dump."""

from . import LEASE_KINDS, LeaseKind

LEASE_KINDS.register("database", LeaseKind("database", backed_up=True))
