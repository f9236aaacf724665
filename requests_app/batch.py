"""Several writes of one transaction in one round trip: `write_batch()`.

Inside the block, the audit rows (`audit_record`), the state changes of `transition_apply(changed=...)`
and the writes made with `batch_update()` and `batch_insert()` are not sent at once; they are written
together as the block ends, in the order they were made: on PostgreSQL in one statement (a
data-modifying WITH, one sub-statement per write), elsewhere one statement after another.

An update made with a condition (a compare-and-set: a state, a claim's token) raises its own exception
when no row matched, after the block's writes were sent; the transaction the block must run in then
rolls back, so none of them stays. The rows a block writes are not visible to what the block reads
before it ends: use it for the writes that close a step of work (a claim, an activation, a decision),
not for writes that the same block reads back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, cast

from django.db import connection, models, transaction
from django.db.models import sql

from .models import AuditEvent


@dataclass
class _Write:
    sql: str
    params: tuple
    row: tuple | None = None  # (table, pk) of an update by key: a second write of that row sends the batch first
    on_miss: Callable[[], Exception] | None = None  # a condition: raised when the update matched no row
    done: Callable[[], None] | None = None  # run once the write was sent


@dataclass
class _Batch:
    writes: list[_Write] = field(default_factory=list)
    events: list[AuditEvent] = field(default_factory=list)
    rows: set[tuple] = field(default_factory=set)


# The innermost `write_batch()` block of this thread (or task), None outside one.
_batch: ContextVar[_Batch | None] = ContextVar("write_batch", default=None)


def in_batch() -> bool:
    return _batch.get() is not None


def pending_events() -> list[AuditEvent] | None:
    """The audit rows of the open batch (audit_record appends to it), None outside one."""
    batch = _batch.get()
    return None if batch is None else batch.events


@contextmanager
def write_batch() -> Iterator[None]:
    """Send the writes made inside the block together as it ends (see the module). Only inside the
    transaction whose changes they are; a nested block leaves its writes to the outer one. When the
    block raises, nothing of it is written."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("write_batch() must run inside the transaction whose changes it writes")
    if _batch.get() is not None:
        yield
        return
    batch = _Batch()
    token = _batch.set(batch)
    try:
        yield
    finally:
        _batch.reset(token)
    _send(batch)


def batch_update(
    queryset: models.QuerySet,
    values: Mapping[str, Any],
    *,
    on_miss: Callable[[], Exception] | None = None,
    done: Callable[[], None] | None = None,
) -> None:
    """`queryset.update(**values)`, inside a batch sent with it. `on_miss`: the rows the queryset
    selects are a condition (a compare-and-set), and the exception it makes is raised when it matched
    none. `done` runs once the update was sent (and matched). Outside a batch, at once."""
    if not values:
        raise ValueError("batch_update() needs a value to write")
    query = cast(sql.UpdateQuery, queryset.query.chain(sql.UpdateQuery))
    query.add_update_values(dict(values))
    query.annotations = {}
    statement, params = query.get_compiler(queryset.db).as_sql()
    _add(_Write(statement, tuple(params), _row_of(queryset), on_miss, done))


def batch_update_fields(
    obj: models.Model,
    fields: list[str],
    *,
    where: Mapping[str, Any] | None = None,
    on_miss: Callable[[], Exception] | None = None,
    done: Callable[[], None] | None = None,
) -> None:
    """Save `fields` of `obj` (its auto-updated timestamps set as `save()` sets them) where its row still
    matches `where`: the write `obj.save(update_fields=fields)` makes, as a compare-and-set."""
    model = type(obj)
    values = {}
    for name in fields:
        f = cast(models.Field, model._meta.get_field(name))
        values[f.name] = f.pre_save(obj, False)
    batch_update(model._base_manager.filter(pk=obj.pk, **(where or {})), values, on_miss=on_miss, done=done)


def batch_insert(obj: models.Model) -> None:
    """`obj.save(force_insert=True)` for a row whose key is set already (nothing is read back), inside a
    batch sent with it; outside one, at once."""
    if _batch.get() is None:
        obj.save(force_insert=True)
        return
    if obj.pk is None:
        raise ValueError("batch_insert() needs the key set: nothing is read back")
    model = type(obj)
    fields = [f for f in model._meta.local_concrete_fields if not f.generated]
    query = sql.InsertQuery(model)
    query.insert_values(fields, [obj])
    ((statement, params),) = query.get_compiler(using=model._default_manager.db).as_sql()

    def saved() -> None:
        obj._state.adding = False
        obj._state.db = model._default_manager.db

    _add(_Write(statement, tuple(params), done=saved))


def _row_of(queryset: models.QuerySet) -> tuple | None:
    where = queryset.query.where
    for child in getattr(where, "children", ()):
        lhs = getattr(child, "lhs", None)
        if getattr(getattr(lhs, "target", None), "primary_key", False) and child.lookup_name == "exact":
            return (queryset.model._meta.db_table, child.rhs)
    return None


def _add(write: _Write) -> None:
    batch = _batch.get()
    if batch is None:
        _send(_Batch(writes=[write]))
        return
    if write.row is not None and write.row in batch.rows:
        # The same row twice in one statement is not allowed: send what is there first.
        pending = _Batch(writes=batch.writes, events=[])
        batch.writes, batch.rows = [], set()
        _send(pending)
    batch.writes.append(write)
    if write.row is not None:
        batch.rows.add(write.row)


def _send(batch: _Batch) -> None:
    writes = list(batch.writes)
    if batch.events:
        query = sql.InsertQuery(AuditEvent)
        fields = [f for f in AuditEvent._meta.local_concrete_fields if not f.primary_key]
        query.insert_values(fields, cast(list[models.Model], batch.events))
        for statement, params in query.get_compiler(using=AuditEvent.objects.db).as_sql():
            writes.append(_Write(statement, tuple(params)))
    if not writes:
        return
    one = connection.vendor == "postgresql" and len(writes) > 1
    matched = _send_as_one(writes) if one else _send_each(writes)
    for write, count in zip(writes, matched, strict=True):
        if write.on_miss is not None and not count:
            raise write.on_miss()
    for write in writes:
        if write.done is not None:
            write.done()


def _send_as_one(writes: list[_Write]) -> list[int]:
    """One statement: `WITH w0 AS (UPDATE ... RETURNING 1), w1 AS (INSERT ...) ... SELECT` the number of
    rows each conditional update matched. Every sub-statement runs, whatever the others matched."""
    parts: list[str] = []
    params: list[Any] = []
    for i, write in enumerate(writes):
        returning = " RETURNING 1" if write.on_miss is not None else ""
        parts.append(f"w{i} AS ({write.sql}{returning})")
        params.extend(write.params)
    # One count per write (1 for a write without a condition), in order.
    counts = ", ".join(_rows_of(f"w{i}") if w.on_miss else "1" for i, w in enumerate(writes))
    # The sub-statements are Django's own, compiled with their parameters apart: only their names (w0,
    # w1, ...) are joined here, no value.
    statement = f"WITH {', '.join(parts)} SELECT {counts}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return list(cursor.fetchone())


def _rows_of(name: str) -> str:
    return f"(SELECT count(*) FROM {name})"  # noqa: S608  # nosec B608 (a name: w0, w1, ...)


def _send_each(writes: list[_Write]) -> list[int]:
    matched = []
    with connection.cursor() as cursor:
        for write in writes:
            cursor.execute(write.sql, write.params)
            matched.append(cursor.rowcount)
    return matched
