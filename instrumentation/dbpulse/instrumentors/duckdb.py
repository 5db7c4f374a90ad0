"""Instrumentation of DuckDB's Python API (``duckdb`` 2.x).

Usage::

    import duckdb
    from dbpulse import DuckDBInstrumentor

    DuckDBInstrumentor().instrument()
    conn = duckdb.connect("books.duckdb")            # an observed connection
    conn.execute("INSERT INTO books VALUES (?)", ["9780140449136"])
    rel = conn.sql("SELECT * FROM books")            # built: nothing runs, no span
    rel.fetchall()                                   # runs: one span
    rel.df()                                         # runs again: another span

    legacy = DuckDBInstrumentor.instrument_connection(conn_made_before)

``DuckDBPyConnection`` is a compiled type, so connections are observed through a proxy
(:class:`wrapt.ObjectProxy`, which keeps ``isinstance`` checks) returned by the patched
``duckdb.connect``; ``execute``/``executemany`` return the proxy, ``cursor()`` and
``duplicate()`` a proxy of the new connection. Relations (``sql``, ``query``, ``read_*``,
``table``...) are lazy: they are wrapped too, and each method that runs the query (``fetchall``,
``df``, ``arrow``, ``pl``, ``show``, ``write_csv``, ``create``, ``insert_into``...) is one
execution, while builders (``filter``, ``project``, ``aggregate``, ``join``, ``limit``...)
return wrapped relations and run nothing. A ``sql()`` whose statement is not one SELECT runs
at the call (DuckDB keeps its result in the relation it returns): the call is the execution.
The module-level functions (``duckdb.sql``, ``duckdb.execute``, ``duckdb.read_csv``...) run on
the default connection, observed the same way.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Collection
from typing import Any

import duckdb
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from dbpulse.core.pipeline import traced_batch, traced_call
from dbpulse.core.statements import Database, Statement, database, statement, statement_cache
from dbpulse.instrumentors._duckdb_relation import (
    SWITCH,
    Observed,
    RelationProxy,
    in_app_scope,
    unwrapped,
)
from dbpulse.telemetry.metrics import OPERATIONS

__all__ = ["SWITCH", "DuckDBInstrumentor"]

_SYSTEM = "duckdb"
_STATEMENTS = statement_cache(_SYSTEM)
_Connection = duckdb.DuckDBPyConnection
_Relation = duckdb.DuckDBPyRelation
_original_connect = duckdb.connect

# Module-level functions that run on the default connection (or ``connection=``).
_MODULE_FUNCTIONS = tuple(
    name
    for name in (
        "sql query from_query execute executemany read_csv read_parquet read_json from_csv_auto "
        "from_parquet from_df from_arrow table view values table_function cursor duplicate"
    ).split()
    if callable(getattr(duckdb, name, None))
)
# Connection methods passed through whose result may be a relation or a connection to wrap.
_PASSING = tuple(
    name
    for name in (
        "read_csv read_parquet read_json from_csv_auto from_parquet from_df from_arrow table "
        "view values table_function cursor duplicate begin commit rollback checkpoint append "
        "register unregister create_function remove_function"
    ).split()
    if callable(getattr(_Connection, name, None))
)


def namespace_of(database_arg: Any) -> str:
    """``db.namespace`` for DuckDB: the file name without directories; in-memory databases
    (``""``, ``:memory:``, ``:memory:name``) are ``:memory:``."""
    try:
        text = os.fsdecode(database_arg)
    except TypeError:
        return str(database_arg)
    if text == "" or text.startswith(":memory:"):
        return ":memory:"
    return os.path.basename(text) or text


def _query_text(query: Any) -> str | None:
    if type(query) is str:
        return query
    text = getattr(query, "query", None)  # a duckdb.Statement (a prepared statement)
    return text if isinstance(text, str) else None


_SHAPES: dict[str, tuple[bool, str | None]] = {}
_PARSER: list[Any] = []
_PARSER_LOCK = threading.Lock()


def _shape(sql: str) -> tuple[bool, str | None]:
    """How ``sql()`` treats ``sql``: (runs at the call, text of the lazy SELECT or ``None``).

    DuckDB's own parser decides (on a private in-memory connection: never the application's,
    whose open result must not be disturbed); cached per text."""
    found = _SHAPES.get(sql)
    if found is None:
        try:
            with _PARSER_LOCK:
                if not _PARSER:
                    _PARSER.append(_original_connect(":memory:"))
                parsed = _PARSER[0].extract_statements(sql)
            last: Any = parsed[-1] if parsed else None
            lazy = last is not None and last.type == duckdb.StatementType.SELECT
            found = (len(parsed) != 1 or not lazy, str(last.query) if lazy else None)
        except Exception:
            found = (True, None)  # DuckDB will raise the same error at the call
        if len(_SHAPES) >= 4096:
            _SHAPES.clear()
        _SHAPES[sql] = found
    return found


def _rowcount(connection: Any) -> int:
    return int(connection.rowcount)


def _held_count(result: Any) -> int:
    """Rows changed by a write that ``sql()`` ran: DuckDB's ``Count`` in the relation it keeps
    (reading it again re-reads the kept result; nothing of the application's is consumed)."""
    if not isinstance(result, _Relation) or result.columns != ["Count"]:
        return -1
    rows = result.fetchall()
    return int(rows[0][0]) if len(rows) == 1 else -1


def _held_rows(result: Any) -> int:
    """Rows changed by a ``RETURNING`` write that ``sql()`` ran: one per row it returned, in
    the relation DuckDB keeps (counted there; the application's rows stay unread)."""
    return len(result) if isinstance(result, _Relation) else -1


def _none(_source: Any) -> int:
    return 0


# The connection's fetch methods, and how many rows each result they return holds.
_FETCHES: dict[str, Callable[[Any], int]] = {
    "fetchone": lambda row: 0 if row is None else 1,
    "fetchmany": len,
    "fetchall": len,
    "fetchdf": len,
    "fetch_df": len,
    "df": len,
    "pl": len,
    "fetchnumpy": lambda columns: len(next(iter(columns.values()))) if columns else 0,
    "arrow": lambda table: int(table.num_rows),
    "fetch_arrow_table": lambda table: int(table.num_rows),
    "to_arrow_table": lambda table: int(table.num_rows),
}


def _statement_for(query: Any) -> Statement | None:
    sql = _query_text(query)
    if sql is None:
        return None
    return _STATEMENTS.get(sql) or statement(_SYSTEM, sql)


class _ConnectionProxy(Observed):
    """An observed ``DuckDBPyConnection``; every other method and property is the connection's."""

    def __init__(self, connection: Any, db: Database) -> None:
        super().__init__(connection)
        self._self_db = db
        # The RETURNING write whose rows the connection holds: DuckDB gives no count for it
        # (rowcount is -1), so its rows are counted as the application reads them.
        self._self_returning: Statement | None = None

    def _read(self, rows: int) -> None:
        stmt = self._self_returning
        if stmt is not None and rows > 0:
            try:
                OPERATIONS.add_rows(stmt.series_for(self._self_db, None), rows, (), stmt)
            except Exception:
                pass

    def __repr__(self) -> str:
        return repr(self.__wrapped__)

    def __enter__(self) -> Any:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        return self.__wrapped__.__exit__(*exc)

    def _rewrap(self, result: Any) -> Any:
        if result is self.__wrapped__:
            return self
        if isinstance(result, _Relation) and not isinstance(result, RelationProxy):
            return RelationProxy(result, self._self_db)
        if type(result) is _Connection:
            return _ConnectionProxy(result, self._self_db)
        return result

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        raw = self.__wrapped__
        run = in_app_scope(raw.execute)
        self._self_returning = None
        stmt = _statement_for(args[0] if args else kwargs.get("query")) if SWITCH.on else None
        if stmt is None:
            return self._rewrap(run(*args, **kwargs))
        params = args[1] if len(args) > 1 else kwargs.get("parameters")
        returning = stmt.returning
        result = traced_call(
            SWITCH, self._self_db, stmt, params, run, args, kwargs,
            _none if returning else _rowcount, raw,
        )  # fmt: skip
        if returning:
            self._self_returning = stmt
        return self._rewrap(result)

    def executemany(self, *args: Any, **kwargs: Any) -> Any:
        raw = self.__wrapped__
        run = in_app_scope(raw.executemany)
        self._self_returning = None
        stmt = _statement_for(args[0] if args else kwargs.get("query")) if SWITCH.on else None
        if stmt is None:
            return self._rewrap(run(*args, **kwargs))
        rows_at: int | str | None = 1 if len(args) > 1 else None
        if rows_at is None and "parameters" in kwargs:
            rows_at = "parameters"
        rows = args[1] if len(args) > 1 else kwargs.get("parameters") or ()
        result = traced_batch(
            SWITCH,
            self._self_db,
            stmt,
            rows,
            run,
            args,
            kwargs,
            rows_at=rows_at,
            rowcount=_rowcount,
            rows_from=raw,
        )
        return self._rewrap(result)

    def _relation_query(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        method = in_app_scope(getattr(self.__wrapped__, name))
        query: Any = args[0] if args else kwargs.get("query")
        sql = _query_text(query) if SWITCH.on else None
        if sql is None:
            return self._rewrap(method(*args, **kwargs))
        params = kwargs.get("params")
        if isinstance(query, str):
            runs_now, lazy_text = _shape(sql)
        else:  # a duckdb.Statement: one statement of a known type
            lazy = query.type == duckdb.StatementType.SELECT
            runs_now, lazy_text = not lazy, (sql if lazy else None)
        if runs_now:
            stmt = _STATEMENTS.get(sql) or statement(_SYSTEM, sql)
            count = (_held_rows if stmt.returning else _held_count) if stmt.is_write else None
            result = traced_call(SWITCH, self._self_db, stmt, params, method, args, kwargs, count)
        else:
            result = method(*args, **kwargs)  # builds (binds) the relation; nothing runs
        if lazy_text is not None and isinstance(result, _Relation):
            return RelationProxy(result, self._self_db, lazy_text, params)
        return result  # DuckDB's kept result of a statement that ran: reading it runs nothing

    def sql(self, *args: Any, **kwargs: Any) -> Any:
        return self._relation_query("sql", args, kwargs)

    def query(self, *args: Any, **kwargs: Any) -> Any:
        return self._relation_query("query", args, kwargs)

    def from_query(self, *args: Any, **kwargs: Any) -> Any:
        return self._relation_query("from_query", args, kwargs)


def _passing(name: str) -> Any:
    """A connection method that runs nothing itself; its relation or connection is wrapped."""

    def method(self: _ConnectionProxy, *args: Any, **kwargs: Any) -> Any:
        args, kwargs = unwrapped(args, kwargs)
        return self._rewrap(in_app_scope(getattr(self.__wrapped__, name))(*args, **kwargs))

    method.__name__ = name
    return method


def _fetch(name: str, rows_of: Callable[[Any], int]) -> Any:
    """A fetch of the connection's result; the rows of a RETURNING write are counted as read."""

    def method(self: _ConnectionProxy, *args: Any, **kwargs: Any) -> Any:
        result = in_app_scope(getattr(self.__wrapped__, name))(*args, **kwargs)
        if self._self_returning is not None:
            try:
                self._read(rows_of(result))
            except Exception:
                pass
        return result

    method.__name__ = name
    return method


for _name in _PASSING:
    setattr(_ConnectionProxy, _name, _passing(_name))
for _name, _rows_of in _FETCHES.items():
    if callable(getattr(_Connection, _name, None)):
        setattr(_ConnectionProxy, _name, _fetch(_name, _rows_of))


def _database_of(connection: Any) -> Database:
    """The namespace of a connection made elsewhere, asked on a duplicate (``cursor()``) so the
    connection's own open result is left alone."""
    path = None
    try:
        cursor = connection.cursor()
        try:
            sql = "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
            row = cursor.execute(sql).fetchone()
            path = row[0] if row else None
        finally:
            cursor.close()
    except Exception:
        pass
    return database(_SYSTEM, namespace_of(path or ":memory:"))


_DEFAULT: list[Any] = [None, None]  # the default connection and its Database


def _default_proxy(connection: Any) -> _ConnectionProxy:
    if isinstance(connection, _ConnectionProxy):
        return connection
    raw = connection if connection is not None else duckdb.default_connection()
    if _DEFAULT[0] is not raw:
        _DEFAULT[:] = [raw, _database_of(raw)]
    return _ConnectionProxy(raw, _DEFAULT[1])


def _module_function(name: str, original: Any) -> Any:
    def function(*args: Any, **kwargs: Any) -> Any:
        if not SWITCH.on:
            args, kwargs = unwrapped(args, kwargs)
            return original(*args, **kwargs)
        proxy = _default_proxy(kwargs.pop("connection", None))
        return getattr(proxy, name)(*args, **kwargs)

    function.__name__ = name
    function.__doc__ = original.__doc__
    function._dbpulse_original = original  # type: ignore[attr-defined]
    return function


def _connect(*args: Any, **kwargs: Any) -> Any:
    """``duckdb.connect``, returning an observed connection."""
    connection = _original_connect(*args, **kwargs)
    database_arg = args[0] if args else kwargs.get("database", ":memory:")
    return _ConnectionProxy(connection, database(_SYSTEM, namespace_of(database_arg)))


class DuckDBInstrumentor(BaseInstrumentor):
    """Instruments ``duckdb``: spans, exact metrics and ISBN keys for every execution."""

    _originals: dict[str, Any] = {}

    def instrumentation_dependencies(self) -> Collection[str]:
        return ["duckdb >= 2.0"]

    def _instrument(self, **kwargs: Any) -> None:
        OPERATIONS.register_instruments(kwargs.get("meter_provider"))
        SWITCH.set_instrumented(True, kwargs.get("tracer_provider"))
        originals = type(self)._originals
        for name in _MODULE_FUNCTIONS:
            original = getattr(duckdb, name)
            originals[name] = original
            setattr(duckdb, name, _module_function(name, original))
        originals["connect"] = duckdb.connect
        duckdb.connect = _connect

    def _uninstrument(self, **kwargs: Any) -> None:
        SWITCH.set_instrumented(False)
        for name, original in type(self)._originals.items():
            setattr(duckdb, name, original)
        type(self)._originals = {}

    @staticmethod
    def instrument_connection(connection: Any, tracer_provider: Any = None) -> Any:
        """Return ``connection`` observed by dbpulse: a proxy that behaves like it (a connection
        from an instrumented ``duckdb.connect`` is returned as it is). Calls are observed while
        dbpulse's DuckDB instrumentation is on."""
        if not SWITCH.instrumented:
            OPERATIONS.register_instruments()
            SWITCH.set_instrumented(True, tracer_provider)
        if isinstance(connection, _ConnectionProxy):
            return connection
        return _ConnectionProxy(connection, _database_of(connection))

    @staticmethod
    def uninstrument_connection(connection: Any) -> Any:
        if isinstance(connection, _ConnectionProxy):
            return connection.__wrapped__
        return connection
