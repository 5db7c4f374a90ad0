"""Instrumentation of the standard library's ``sqlite3``.

Usage::

    import sqlite3
    from dbpulse import SQLite3Instrumentor

    SQLite3Instrumentor().instrument()
    conn = sqlite3.connect("books.db")          # instrumented
    conn.execute("INSERT INTO books(isbn) VALUES (?)", ("9780140449136",))

    legacy = SQLite3Instrumentor.instrument_connection(conn_made_before)

Every path an application takes is observed once: ``Connection.execute``, ``executemany``,
``executescript`` and the same methods on cursors. ``sqlite3.connect`` is patched to pass a
``factory`` that subclasses the application's own (default ``sqlite3.Connection``), so
connections stay real ``sqlite3.Connection`` objects; the subclasses carry the names of the
classes they extend, so messages and ``repr()`` read as without dbpulse. Calls the driver
would refuse (no SQL, keywords, too many arguments) reach it unchanged and fail with its own
message; ``Connection.execute`` of a ``RETURNING`` statement uses a ``sqlite3.Cursor`` as the
driver does, whatever the connection's own ``cursor()`` makes. Connections made before instrumenting
are wrapped by :meth:`SQLite3Instrumentor.instrument_connection`: it returns a proxy, and only
calls made through the returned object are observed (the original object is not changed).
Connection factories and cursor factories that are not classes (a lambda, a
``functools.partial``) are passed to the driver unchanged: their connections and cursors work
as without dbpulse but are not observed. ``uninstrument()`` and
``dbpulse.set_enabled(False)`` stop the work on connections already open: each method checks
one flag and calls straight through.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Collection
from operator import attrgetter
from typing import Any

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from dbpulse.core.pipeline import traced_batch, traced_call
from dbpulse.core.state import Switch
from dbpulse.core.statements import Database, database, statement, statement_cache
from dbpulse.instrumentors import _stock
from dbpulse.instrumentors.sqlite_returning import count_when_read, settle_connection
from dbpulse.telemetry.metrics import OPERATIONS

__all__ = ["SQLite3Instrumentor"]

SWITCH = Switch("sqlite")
_SYSTEM = "sqlite"
_STATEMENTS = statement_cache(_SYSTEM)
_original_connect = sqlite3.connect
_rowcount = attrgetter("rowcount")


def _later(cursor: Any) -> int:
    """No rows yet: a RETURNING write's rows are counted as its statement ends."""
    return 0


_connection_cursor: Any = sqlite3.Connection.cursor  # the driver's, whatever a subclass says
_FACTORY_POSITION = 5  # sqlite3.connect(database, timeout, detect_types, isolation_level,
# check_same_thread, factory, ...)


def namespace_of(database_arg: Any) -> str:
    """``db.namespace`` for SQLite: the file name without directories, ``:memory:`` as is."""
    try:
        text = os.fsdecode(database_arg)
    except TypeError:
        return str(database_arg)
    if text.startswith("file:"):
        text = text[5:].split("?", 1)[0]
    if text in ("", ":memory:"):
        return ":memory:"
    return os.path.basename(text) or text


def _database_for(database_arg: Any) -> Database:
    return database(_SYSTEM, namespace_of(database_arg))


def _bases(factory: type) -> dict[str, Any]:
    """The factory's own methods, stored on the subclass so the hot path calls them without
    ``super()`` (0.15 µs per call)."""
    return {
        f"_dbp_{name}": staticmethod(getattr(factory, name))
        for name in ("execute", "executemany", "executescript")
    }


_NONE: Any = object()  # an argument the application did not give


def _given(*args: Any) -> tuple[Any, ...]:
    """The positional arguments the application gave (those before the first it did not), for
    a call handed to the driver as it was made."""
    for index, arg in enumerate(args):
        if arg is _NONE:
            return args[:index]
    return args


class _Observed:
    """``execute``, ``executemany`` and ``executescript``, observed: shared by the instrumented
    connection and cursor classes. ``Connection.execute`` runs the statement in C without
    calling a cursor's ``execute``, so each path is observed exactly once."""

    _dbpulse_db: Database
    # A connection whose execute is the driver's runs RETURNING on a cursor of ours; an
    # application's own execute (a subclass's) is called as it is.
    _dbp_returning_via_cursor = False
    cursor: Any  # on the connection side, the application's cursor()
    _plain_cursor: Any  # and the cursor Connection.execute would make
    _dbp_execute: Any
    _dbp_executemany: Any
    _dbp_executescript: Any

    # Positional-only parameters with defaults, ``*rest`` and ``**kwargs``: a call the driver
    # would refuse (no SQL, three arguments, keywords) goes to it unchanged and fails with its
    # own message; a call it accepts binds as cheaply as a fixed signature.
    def execute(
        self, sql: Any = _NONE, parameters: Any = _NONE, /, *rest: Any, **kwargs: Any
    ) -> Any:
        if not SWITCH.on or type(sql) is not str or rest or kwargs:
            return self._dbp_execute(self, *_given(sql, parameters, *rest), **kwargs)
        if parameters is _NONE:
            parameters = ()
        stmt = _STATEMENTS.get(sql) or statement(_SYSTEM, sql)
        rowcount: Any = _rowcount
        changes = None
        if stmt.returning:
            if self._dbp_returning_via_cursor:
                # The driver's Connection.execute makes a plain cursor in C, whose reads can't
                # be watched: run it on one of ours, of the class the driver uses there
                # (sqlite3.Cursor, whatever the connection's own cursor() would make).
                return self._plain_cursor().execute(sql, parameters)
            rowcount = _later
        elif stmt.behind_cte or stmt.conflict_fail:
            # The driver's rowcount is -1 for a write behind a CTE (it only knows statements
            # that start with INSERT/UPDATE/DELETE/REPLACE), and for a failed OR FAIL write
            # whose earlier rows stay written: count what the connection changed.
            changes = _ChangesSince(self)
            rowcount = _ChangesSince.count
        try:
            cursor = traced_call(
                SWITCH,
                self._dbpulse_db,
                stmt,
                parameters,
                self._dbp_execute,
                (self, sql, parameters),
                rowcount=rowcount,
                rows_from=changes,
            )
        except BaseException:
            if changes is not None:
                _count_partial(self._dbpulse_db, stmt, changes)
            raise
        if rowcount is _later:
            count_when_read(cursor, self._dbpulse_db, stmt, parameters)
        return cursor

    def executemany(
        self, sql: Any = _NONE, seq_of_parameters: Any = _NONE, /, *rest: Any, **kwargs: Any
    ) -> Any:
        if not SWITCH.on or type(sql) is not str or seq_of_parameters is _NONE or rest or kwargs:
            return self._dbp_executemany(self, *_given(sql, seq_of_parameters, *rest), **kwargs)
        stmt = _STATEMENTS.get(sql) or statement(_SYSTEM, sql)
        # The rows a batch wrote before one of its rows failed stay written (in the open
        # transaction), and the driver's rowcount is then -1; with RETURNING it is 0 (3.11)
        # or the driver refuses after the first row (3.12+): count what the connection changed.
        changes = _ChangesSince(self) if stmt.is_write else None
        try:
            return traced_batch(
                SWITCH,
                self._dbpulse_db,
                stmt,
                seq_of_parameters,
                self._dbp_executemany,
                (self, sql, seq_of_parameters),
                rows_at=2,
                rowcount=_ChangesSince.count if stmt.returning else _rowcount,
                rows_from=changes if stmt.returning else None,
            )
        except BaseException:
            if changes is not None:
                _count_partial(self._dbpulse_db, stmt, changes)
            raise

    def executescript(self, sql_script: Any = _NONE, /, *rest: Any, **kwargs: Any) -> Any:
        if not SWITCH.on or type(sql_script) is not str or rest or kwargs:
            return self._dbp_executescript(self, *_given(sql_script, *rest), **kwargs)
        stmt = _STATEMENTS.get(sql_script) or statement(_SYSTEM, sql_script)
        changes = _ChangesSince(self)
        try:
            return traced_call(
                SWITCH,
                self._dbpulse_db,
                stmt,
                None,
                self._dbp_executescript,
                (self, sql_script),
                rowcount=_ChangesSince.count,
                rows_from=changes,
            )
        except BaseException:
            # The statements before the failing one stay done.
            _count_partial(self._dbpulse_db, stmt, changes)
            raise


def _count_partial(db: Database, stmt: Any, changes: _ChangesSince) -> None:
    """Add the rows a failed batch or script changed before it failed. Never raises."""
    try:
        OPERATIONS.add_rows(stmt.series_for(db, None), changes.count(), (), stmt)
    except Exception:
        pass


class _ChangesSince:
    """Rows a script changed: the connection's ``total_changes`` after it minus before (the
    driver's ``rowcount`` is -1 for ``executescript``)."""

    __slots__ = ("before", "connection")

    def __init__(self, owner: Any) -> None:
        # A cursor's connection, or the connection (or proxy) itself.
        self.connection = getattr(owner, "connection", owner)
        self.before = self.connection.total_changes

    def count(self) -> int:
        return int(self.connection.total_changes - self.before)


class _CursorMixin(_Observed):
    """An instrumented cursor; ``_dbpulse_db`` is set by the connection that made it."""


_classes: dict[tuple[type, type], type] = {}


def _instrumented(mixin: type, factory: Any, base: type) -> Any:
    """The instrumented subclass of the application's ``factory`` (made once per factory).

    Anything that is not a subclass of ``base`` (a lambda, a ``functools.partial``, a wrong
    argument) is returned as it is: the driver then does with it what it does without dbpulse,
    errors included."""
    if not isinstance(factory, type) or not issubclass(factory, base):
        return factory
    if issubclass(factory, mixin):
        return factory
    found = _classes.get((mixin, factory))
    if found is None:
        namespace = _bases(factory)
        # A connection class with a cursor() of its own keeps its default cursor class.
        own = getattr(factory, "cursor", None) is not sqlite3.Connection.cursor
        namespace["_dbp_own_cursor"] = own
        namespace["_dbp_returning_via_cursor"] = _executes_as_driver(factory)
        found = _classes.setdefault(
            (mixin, factory), named_like(factory, type("Instrumented", (mixin, factory), namespace))
        )
    return found


def named_like(factory: type, cls: type) -> type:
    """``cls`` (a subclass of ``factory``) under ``factory``'s names, so that the driver's and
    Python's messages (``'sqlite3.Connection' object has no attribute ...``), ``repr()`` and
    ``__qualname__`` read as without dbpulse. The driver's own classes are named in messages
    by module and name; ``isinstance(obj, factory)`` is how to tell, as without dbpulse."""
    builtin = factory in (sqlite3.Connection, sqlite3.Cursor)
    cls.__name__ = f"sqlite3.{factory.__name__}" if builtin else factory.__name__
    cls.__qualname__ = factory.__qualname__
    cls.__module__ = factory.__module__
    return cls


def _executes_as_driver(factory: type) -> bool:
    return getattr(factory, "execute", None) is sqlite3.Connection.execute


def _instrumented_cursor_class(factory: Any) -> Any:
    return _instrumented(_CursorMixin, factory, sqlite3.Cursor)


def _observed_cursor(cursor: Any, db: Database) -> Any:
    """``cursor`` observed: ours already, or moved to the instrumented subclass of its own
    class when the layouts allow (a Python subclass); a plain C cursor stays as it is."""
    if not isinstance(cursor, _CursorMixin):
        observed = _instrumented_cursor_class(type(cursor))
        if observed is type(cursor):
            return cursor
        try:
            cursor.__class__ = observed
        except TypeError:
            return cursor
    cursor._dbpulse_db = db
    return cursor


def _cursor(make: Any, args: tuple[Any, ...], kwargs: dict[str, Any], own: bool, db: Any) -> Any:
    """``connection.cursor(*args, **kwargs)`` through ``make`` with an instrumented cursor
    class; the driver sees the same arguments otherwise, so it raises what it would raise."""
    if args:
        args = (_instrumented_cursor_class(args[0]), *args[1:])
    elif "factory" in kwargs:
        kwargs = {**kwargs, "factory": _instrumented_cursor_class(kwargs["factory"])}
    elif not own and not kwargs:
        args = (_CURSOR,)
    return _observed_cursor(make(*args, **kwargs), db)


class _ConnectionMixin(_Observed):
    """An instrumented connection class (a subclass of the application's factory)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._dbpulse_db = _database_for(args[0] if args else kwargs.get("database", ""))

    _dbp_own_cursor = False

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        make = super().cursor
        return _cursor(make, args, kwargs, self._dbp_own_cursor, self._dbpulse_db)

    def close(self, *args: Any, **kwargs: Any) -> Any:
        settle_connection(self)  # a RETURNING write not read to the end counts first
        return super().close(*args, **kwargs)  # type: ignore[misc]

    def _plain_cursor(self) -> Any:
        return _observed_cursor(_connection_cursor(self, _CURSOR), self._dbpulse_db)


_CURSOR = _instrumented_cursor_class(sqlite3.Cursor)


def _instrumented_connection_class(factory: Any) -> Any:
    return _instrumented(_ConnectionMixin, factory, sqlite3.Connection)


def _connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
    """``sqlite3.connect`` with an instrumented connection factory."""
    if len(args) > _FACTORY_POSITION:
        args = list(args)  # type: ignore[assignment]
        args[_FACTORY_POSITION] = _instrumented_connection_class(args[_FACTORY_POSITION])  # type: ignore[index]
        args = tuple(args)
    else:
        factory = kwargs.get("factory", sqlite3.Connection)
        kwargs["factory"] = _instrumented_connection_class(factory)
    return _original_connect(*args, **kwargs)


def _forward(name: str) -> Any:
    """A ``_dbp_*`` method of the proxy: call ``name`` on the wrapped connection."""

    def call(proxy: Any, *args: Any, **kwargs: Any) -> Any:
        return getattr(proxy.__wrapped__, name)(*args, **kwargs)

    return staticmethod(call)


class _ConnectionProxy(_Observed, wrapt.ObjectProxy):
    """Wraps a connection made before instrumenting (a C object whose class can't change)."""

    _dbp_execute = _forward("execute")
    _dbp_executemany = _forward("executemany")
    _dbp_executescript = _forward("executescript")

    def __init__(self, connection: sqlite3.Connection, db: Database) -> None:
        super().__init__(connection)
        self._self_db = db
        self._self_returning_via_cursor = _executes_as_driver(type(connection))

    @property
    def _dbp_returning_via_cursor(self) -> bool:  # type: ignore[override]
        return self._self_returning_via_cursor

    @property
    def _dbpulse_db(self) -> Database:  # type: ignore[override]
        return self._self_db

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        wrapped = self.__wrapped__
        own = getattr(type(wrapped), "cursor", None) is not sqlite3.Connection.cursor
        return _cursor(wrapped.cursor, args, kwargs, own, self._self_db)

    def _plain_cursor(self) -> Any:
        return _observed_cursor(_connection_cursor(self.__wrapped__, _CURSOR), self._self_db)

    def close(self, *args: Any, **kwargs: Any) -> Any:
        settle_connection(self.__wrapped__)
        return self.__wrapped__.close(*args, **kwargs)

    def __enter__(self) -> Any:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        return self.__wrapped__.__exit__(*exc)


def _main_database_file(connection: sqlite3.Connection) -> str:
    try:
        for _, name, path in connection.execute("PRAGMA database_list"):
            if name == "main":
                return str(path or ":memory:")
    except Exception:
        pass
    return ":memory:"


class SQLite3Instrumentor(BaseInstrumentor):
    """Instruments ``sqlite3`` (stdlib): spans, exact metrics and ISBN keys for every call."""

    _stock: Any = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return []

    def _instrument(self, **kwargs: Any) -> None:
        # Take over the stock instrumentor before patching, so its wrapper never sits under ours.
        type(self)._stock = _stock.take_over(
            "opentelemetry.instrumentation.sqlite3", "SQLite3Instrumentor"
        )
        OPERATIONS.register_instruments(kwargs.get("meter_provider"))
        SWITCH.set_instrumented(True, kwargs.get("tracer_provider"))
        sqlite3.connect = _connect  # type: ignore[assignment]
        sqlite3.dbapi2.connect = _connect  # type: ignore[assignment]

    def _uninstrument(self, **kwargs: Any) -> None:
        SWITCH.set_instrumented(False)
        sqlite3.connect = _original_connect
        sqlite3.dbapi2.connect = _original_connect
        _stock.release(type(self)._stock)
        type(self)._stock = None

    @staticmethod
    def instrument_connection(connection: Any, tracer_provider: Any = None) -> Any:
        """Return ``connection`` observed by dbpulse.

        A connection made by an instrumented ``sqlite3.connect`` is returned as it is; any other
        is wrapped in a proxy that behaves like it. Calls are observed while dbpulse's SQLite
        instrumentation is on (``SQLite3Instrumentor().instrument()`` or ``dbpulse.instrument()``).
        """
        if not SWITCH.instrumented:
            OPERATIONS.register_instruments()
            SWITCH.set_instrumented(True, tracer_provider)
        if isinstance(connection, _ConnectionMixin | _ConnectionProxy):
            return connection
        db = _database_for(_main_database_file(connection))
        return _ConnectionProxy(connection, db)

    @staticmethod
    def uninstrument_connection(connection: Any) -> Any:
        if isinstance(connection, _ConnectionProxy):
            return connection.__wrapped__
        return connection
