"""Several writes of one transaction in one round trip: `write_batch()`.

Inside the block, the audit rows (`audit_record`), the state changes of `transition_apply(changed=...)`
and the writes made with `batch_update()`, `batch_insert()` and `batch_create()` are not sent at once;
they are written together as the block ends, in the order they were made: on PostgreSQL in one
statement (a data-modifying WITH, one sub-statement per write), elsewhere one statement after another.
An insert whose keys the database gives reads them back in that statement, and an audit row about such
a row takes its key from it.

An update made with a condition (a compare-and-set: a state, a claim's token) raises its own exception
when no row matched, after the block's writes were sent; the transaction the block must run in then
rolls back, so none of them stays. The rows a block writes are not visible to what the block reads
before it ends: use it for the writes that close a step of work (a claim, an activation, a decision),
not for writes that the same block reads back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, cast

from django.db import connection, models, transaction
from django.db.models import sql
from django.db.models.expressions import RawSQL

from .models import AuditEvent


@dataclass
class _Write:
    sql: str
    params: tuple
    row: tuple | None = None  # (table, pk) of an update by key: a second write of that row sends the batch first
    on_miss: Callable[[], Exception] | None = None  # a condition: raised when the update matched no row
    done: Callable[[], None] | None = None  # run once the write was sent
    created: list[models.Model] | None = None  # an insert of these rows, whose keys are read back


@dataclass
class _Batch:
    writes: list[_Write] = field(default_factory=list)
    events: list[AuditEvent] = field(default_factory=list)
    rows: set[tuple] = field(default_factory=set)
    targets: dict[int, models.Model] = field(default_factory=dict)  # id(event) -> row inserted in the batch


# The innermost `write_batch()` block of this thread (or task), None outside one.
_batch: ContextVar[_Batch | None] = ContextVar("write_batch", default=None)


def in_batch() -> bool:
    return _batch.get() is not None


def pending_events() -> list[AuditEvent] | None:
    """The audit rows of the open batch (audit_record appends to it), None outside one."""
    batch = _batch.get()
    return None if batch is None else batch.events


def audit_pending(event: AuditEvent, target: models.Model) -> None:
    """`event` is about `target`, a row this batch inserts (`batch_create([target])`, one row) and whose
    key it does not know yet: its `target_id` is that key, taken from the insert in the same statement."""
    batch = _batch.get()
    if batch is None or not any(w.created == [target] for w in batch.writes):
        raise ValueError("audit_pending() is for an event about a row the open batch inserts on its own")
    batch.targets[id(event)] = target


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


def batch_create(objs: Sequence[models.Model]) -> None:
    """`bulk_create(objs)` for rows whose keys the database gives, inside a batch sent with it: the keys
    are set on `objs` once it was sent (on PostgreSQL read back by the same statement). Outside a
    batch, at once."""
    if not objs:
        return
    model = type(objs[0])
    if _batch.get() is None:
        model._default_manager.bulk_create(objs)
        return
    fields = [f for f in model._meta.local_concrete_fields if not f.generated and not f.primary_key]
    query = sql.InsertQuery(model)
    query.insert_values(fields, list(objs))
    ((statement, params),) = query.get_compiler(using=model._default_manager.db).as_sql()
    _add(_Write(statement, tuple(params), created=list(objs)))


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
    if not writes and not batch.events:
        return
    if connection.vendor == "postgresql" and len(writes) + bool(batch.events) > 1:
        writes += _audit_writes(batch, writes)
        results = _send_as_one(writes)
    else:
        results = _send_each(writes)
        _keys_set(writes, results)  # the keys the events' targets were given, before the events are written
        events = _audit_writes(batch, writes)
        writes += events
        results += _send_each(events)
    for write, result in zip(writes, results, strict=True):
        if write.on_miss is not None and not result:
            raise write.on_miss()
    _keys_set(writes, results)
    for event_id, target in batch.targets.items():
        event = next(e for e in batch.events if id(e) == event_id)
        event.target_id = str(target.pk)
    for write in writes:
        if write.done is not None:
            write.done()


def _keys_set(writes: list[_Write], results: list) -> None:
    for write, result in zip(writes, results, strict=True):
        if write.created is not None and write.created[0]._state.adding:
            _keys_read_back(write.created, result)


def _audit_writes(batch: _Batch, writes: list[_Write]) -> list[_Write]:
    """The insert of the batch's audit rows. An event about a row the batch inserts takes that row's key:
    once it is known (one statement after another), or from the insert's RETURNING in the same statement."""
    if not batch.events:
        return []
    for event in batch.events:
        target = batch.targets.get(id(event))
        if target is None:
            continue
        if target.pk is not None:
            event.target_id = str(target.pk)
        else:
            index = next(i for i, w in enumerate(writes) if w.created == [target])
            # The SQL is the sub-statement's name only (w0, w1, ...): no value reaches it.
            event.target_id = RawSQL(_key_text_of(f"w{index}"), ())  # noqa: S611  # nosec B611
    query = sql.InsertQuery(AuditEvent)
    fields = [f for f in AuditEvent._meta.local_concrete_fields if not f.primary_key]
    query.insert_values(fields, cast(list[models.Model], batch.events))
    return [
        _Write(statement, tuple(params))
        for statement, params in query.get_compiler(using=AuditEvent.objects.db).as_sql()
    ]


def _keys_read_back(objs: list[models.Model], keys: list) -> None:
    """Set the keys the database gave `objs`. One INSERT takes its rows' keys from the sequence in the
    order of its rows, so the keys in ascending order are those of `objs` in order."""
    if len(keys) != len(objs):
        raise RuntimeError(f"{len(objs)} rows inserted, {len(keys)} keys read back")
    db = type(objs[0])._default_manager.db
    for obj, key in zip(objs, sorted(keys), strict=True):
        obj.pk = key
        obj._state.adding = False
        obj._state.db = db


def _send_as_one(writes: list[_Write]) -> list:
    """One statement: `WITH w0 AS (UPDATE ... RETURNING 1), w1 AS (INSERT ...) ... SELECT` the number of
    rows each conditional update matched and the keys each insert that reads them back gave its rows.
    Every sub-statement runs, whatever the others matched."""
    parts: list[str] = []
    params: list[Any] = []
    results: list[str] = []
    for i, write in enumerate(writes):
        name = f"w{i}"
        if write.created is not None:  # the keys the rows were given
            key = connection.ops.quote_name(type(write.created[0])._meta.pk.column or "id")
            parts.append(f"{name} AS ({write.sql} RETURNING {key} AS key)")
            results.append(_keys_of(name))
        elif write.on_miss is not None:  # the rows a condition matched
            parts.append(f"{name} AS ({write.sql} RETURNING 1)")
            results.append(_rows_of(name))
        else:
            parts.append(f"{name} AS ({write.sql})")
            results.append("1")
        params.extend(write.params)
    counts = ", ".join(results)
    # The sub-statements are Django's own, compiled with their parameters apart: only their names (w0,
    # w1, ...) are joined here, no value.
    statement = f"WITH {', '.join(parts)} SELECT {counts}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return list(cursor.fetchone())


def _keys_of(name: str) -> str:
    return f"(SELECT array_agg(key) FROM {name})"  # noqa: S608  # nosec B608 (a name: w0, w1, ...)


def _key_text_of(name: str) -> str:
    return f"(SELECT key::text FROM {name})"  # noqa: S608  # nosec B608 (a name: w0, w1, ...)


def _rows_of(name: str) -> str:
    return f"(SELECT count(*) FROM {name})"  # noqa: S608  # nosec B608 (a name: w0, w1, ...)


def _send_each(writes: list[_Write]) -> list:
    results: list = []
    with connection.cursor() as cursor:
        for write in writes:
            if write.created is not None:
                model = type(write.created[0])
                model._default_manager.bulk_create(write.created)  # sets the keys as it can on this database
                results.append([obj.pk for obj in write.created])
                continue
            cursor.execute(write.sql, write.params)
            results.append(cursor.rowcount)
    return results
