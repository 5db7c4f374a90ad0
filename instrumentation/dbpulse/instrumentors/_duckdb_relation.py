"""DuckDB relations, observed: one execution per method that runs the query, none for building.

A ``DuckDBPyRelation`` is a query built a step at a time; it runs when a method reads its rows
(or writes them somewhere) and again on every read. :class:`RelationProxy` wraps one: the
methods in :data:`_RUNS` are each one observed execution (``iter_rows`` when its first row is
asked for), every other method returns its result with relations wrapped again, so chains
(``rel.filter(...).limit(5).df()``) stay observed. ``len(rel)``, ``repr``/``str`` and
``explain()`` are DuckDB's previews and metadata reads and are not traced.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from typing import Any

import duckdb
import wrapt

from dbpulse.core.pipeline import Call, traced_call
from dbpulse.core.state import Switch
from dbpulse.core.statements import Database, Statement, statement

__all__ = ["SWITCH", "Observed", "RelationProxy", "in_app_scope", "unwrapped"]

SWITCH = Switch("duckdb")
_SYSTEM = "duckdb"
_Relation = duckdb.DuckDBPyRelation

# Method → how its statement reads: "read" (the relation's query), or a template around it.
_READS = (
    "fetchall fetchone fetchmany fetchnumpy fetchdf df to_df fetch_df torch tf arrow "
    "to_arrow_table fetch_arrow_table to_arrow_reader fetch_arrow_reader fetch_record_batch "
    "record_batch __arrow_c_stream__ pl to_dicts show materialize execute iter_rows"
).split()
_WRITES = {
    "insert_into": "INSERT INTO {target} {sql}",
    "create": "CREATE TABLE {target} AS {sql}",
    "to_table": "CREATE TABLE {target} AS {sql}",
    "create_view": "CREATE VIEW {target} AS {sql}",
    "to_view": "CREATE VIEW {target} AS {sql}",
    "write_csv": "COPY ({sql}) TO '{target}'",
    "to_csv": "COPY ({sql}) TO '{target}'",
    "write_parquet": "COPY ({sql}) TO '{target}'",
    "to_parquet": "COPY ({sql}) TO '{target}'",
    "insert": "INSERT INTO {alias} VALUES (?)",
    "update": "UPDATE {alias} SET ?",
}
_RUNS = {**dict.fromkeys(_READS, "{sql}"), **_WRITES}
_TARGET_KEYWORDS = ("table_name", "view_name", "file_name")
# DuckDB names the steps of a built relation with random suffixes; one text per shape of query.
_RANDOM_ALIAS = re.compile(r'"([A-Za-z_]+)_[0-9a-f]{16}"')


# The modules whose frames stand between the application and DuckDB.
_OWN_FRAMES = frozenset(
    (
        "dbpulse.instrumentors.duckdb",
        "dbpulse.instrumentors._duckdb_relation",
        "dbpulse.core.pipeline",
    )
)
_IN_SCOPE = "__dbpulse_fn__(*__dbpulse_args__, **__dbpulse_kwargs__)"
_SCOPED: dict[tuple[str, int], Any] = {}


def _scoped_call(frame: Any) -> Any:
    """The compiled call, placed at the caller's file and line (so DuckDB's warnings point
    where they point without dbpulse); one per call site."""
    site = (frame.f_code.co_filename, frame.f_lineno or 1)
    code = _SCOPED.get(site)
    if code is None:
        if len(_SCOPED) >= 4096:
            _SCOPED.clear()
        code = _SCOPED[site] = compile("\n" * (site[1] - 1) + _IN_SCOPE, site[0], "eval")
    return code


def in_app_scope(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` (a DuckDB method) called as if from the application's frame.

    DuckDB finds the Python objects a query names (``SELECT * FROM df``, a DataFrame local to
    the caller) in the locals and globals of the frame that called it, and attributes its
    warnings to that frame, which would be dbpulse's: the call is evaluated with the
    application's globals, a copy of its locals, at its file and line."""

    def call(*args: Any, **kwargs: Any) -> Any:
        frame: Any = sys._getframe(1)
        while frame is not None and frame.f_globals.get("__name__") in _OWN_FRAMES:
            frame = frame.f_back
        if frame is None:
            return fn(*args, **kwargs)
        scope_globals = frame.f_globals
        found = frame.f_locals
        scope = {} if found is scope_globals else dict(found)
        scope["__dbpulse_fn__"] = fn
        scope["__dbpulse_args__"] = args
        scope["__dbpulse_kwargs__"] = kwargs
        return eval(_scoped_call(frame), scope_globals, scope)  # a fixed call, compiled once

    return call


class Observed(wrapt.ObjectProxy):
    """dbpulse's proxies of DuckDB objects (and only those are unwrapped for DuckDB)."""


def unwrapped(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], Any]:
    """Arguments with dbpulse's proxies replaced by what they wrap (DuckDB checks types)."""
    if any(isinstance(a, Observed) for a in args):
        args = tuple(a.__wrapped__ if isinstance(a, Observed) else a for a in args)
    if kwargs and any(isinstance(v, Observed) for v in kwargs.values()):
        kwargs = {k: v.__wrapped__ if isinstance(v, Observed) else v for k, v in kwargs.items()}
    return args, kwargs


def _target(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    if args:
        return str(args[0])
    for keyword in _TARGET_KEYWORDS:
        if keyword in kwargs:
            return str(kwargs[keyword])
    return ""


class RelationProxy(Observed):
    """An observed ``DuckDBPyRelation``: ``isinstance`` checks and every method keep working."""

    def __init__(
        self, relation: Any, db: Database, sql: str | None = None, params: Any = None
    ) -> None:
        super().__init__(relation)
        self._self_db = db
        self._self_sql = sql  # the relation's query; rendered by DuckDB when first needed
        self._self_params = params

    def __repr__(self) -> str:
        return repr(self.__wrapped__)

    def __getitem__(self, key: Any) -> Any:
        return self._rewrap(self.__wrapped__[key])

    def _rewrap(self, result: Any) -> Any:
        if isinstance(result, _Relation) and not isinstance(result, RelationProxy):
            return RelationProxy(result, self._self_db, None, self._self_params)
        return result

    def _sql(self) -> str:
        sql = self._self_sql
        if sql is None:
            try:
                sql = _RANDOM_ALIAS.sub(r'"\1"', str(self.__wrapped__.sql_query()))
            except Exception:
                sql = "SELECT"
            self._self_sql = sql
        return sql

    def _statement(self, template: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Statement:
        if template == "{sql}":
            return statement(_SYSTEM, self._sql())
        alias = getattr(self.__wrapped__, "alias", "") or ""
        target = _target(args, kwargs).replace("'", "''")
        return statement(_SYSTEM, template.format(target=target, alias=alias, sql=self._sql()))

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.__wrapped__, name)
        if not callable(value):
            return value
        template = _RUNS.get(name)
        if template is None:
            if name.startswith("__"):
                return value

            def built(*args: Any, **kwargs: Any) -> Any:
                args, kwargs = unwrapped(args, kwargs)
                return self._rewrap(in_app_scope(value)(*args, **kwargs))

            return built

        def runs(*args: Any, **kwargs: Any) -> Any:
            args, kwargs = unwrapped(args, kwargs)
            call = in_app_scope(value)
            if not SWITCH.on:
                return call(*args, **kwargs)
            stmt = self._statement(template, args, kwargs)
            params = (args[0] if args else kwargs.get("values")) if name == "insert" else None
            params = self._self_params if params is None else params
            if name == "iter_rows":
                return _rows(self._self_db, stmt, params, call(*args, **kwargs))
            return traced_call(SWITCH, self._self_db, stmt, params, call, args, kwargs)

        return runs


def _rows(db: Database, stmt: Statement, params: Any, rows: Iterator[Any]) -> Iterator[Any]:
    """``iter_rows``: the query runs when the first row is asked for; the execution ends when
    the rows are read out or the iterator is closed."""
    call = Call.begin(SWITCH, db, stmt, params)
    try:
        yield from rows
    except GeneratorExit:
        call.done()
        raise
    except BaseException as exc:
        call.failed(exc)
        raise
    call.done()
