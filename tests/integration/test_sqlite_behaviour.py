"""The application sees what the raw driver gives: each scenario runs raw and instrumented.

Results are compared by value, exceptions by type and message (class names of dbpulse's own
subclasses aside: they are the application's class name with ``Instrumented`` in front).
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest

import dbpulse


class MyCursor(sqlite3.Cursor):
    def hello(self) -> str:
        return "hi"


class MyConnection(sqlite3.Connection):
    def cursor(self, factory: Any = MyCursor) -> Any:  # its own default cursor class
        return super().cursor(factory)


class Truthless(list):
    """A parameter sequence whose truth value raises (numpy arrays behave so)."""

    def __bool__(self) -> bool:
        raise ValueError("the truth value is ambiguous")


def _table() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, x)")
    return conn


def s_custom_default_cursor() -> Any:
    conn = sqlite3.connect(":memory:", factory=MyConnection)
    cursor = conn.cursor()
    return cursor.hello(), cursor.execute("SELECT 1").fetchall()


def s_partial_factory() -> Any:
    conn = sqlite3.connect(":memory:", factory=functools.partial(sqlite3.Connection))
    return conn.execute("SELECT 2").fetchall()


def s_lambda_factory() -> Any:
    conn = sqlite3.connect(":memory:", factory=lambda *a, **k: sqlite3.Connection(*a, **k))
    return conn.execute("SELECT 3").fetchall()


def s_factory_none() -> Any:
    return sqlite3.connect(":memory:", factory=None)


def s_cursor_dict() -> Any:
    return sqlite3.connect(":memory:").cursor(dict)


def s_cursor_none() -> Any:
    return sqlite3.connect(":memory:").cursor(None)


def s_cursor_callable() -> Any:
    conn = sqlite3.connect(":memory:")
    return conn.cursor(lambda c: sqlite3.Cursor(c)).execute("SELECT 4").fetchall()


def s_truthless_parameters() -> Any:
    conn = _table()
    conn.execute("INSERT INTO t (x) VALUES (?)", Truthless([7]))
    return conn.execute("SELECT x FROM t").fetchall()


def s_executemany_generator() -> Any:
    conn = _table()
    conn.executemany("INSERT INTO t (x) VALUES (?)", ((i,) for i in range(5)))
    return conn.execute("SELECT count(*), sum(x) FROM t").fetchall()


def s_backup_into() -> Any:
    source, target = _table(), sqlite3.connect(":memory:")
    source.execute("INSERT INTO t (x) VALUES (1)")
    source.commit()
    source.backup(target)
    return target.execute("SELECT x FROM t").fetchall()


def s_iterdump() -> Any:
    conn = _table()
    conn.execute("INSERT INTO t (x) VALUES ('a')")
    return list(conn.iterdump())


def s_row_factory() -> Any:
    conn = _table()
    conn.row_factory = sqlite3.Row
    conn.execute("INSERT INTO t (x) VALUES (5)")
    row = conn.execute("SELECT id, x FROM t").fetchone()
    return type(row).__name__, dict(row)


def s_context_manager_rollback() -> Any:
    conn = _table()
    with pytest.raises(sqlite3.IntegrityError), conn:
        conn.execute("INSERT INTO t (id, x) VALUES (1, 1)")
        conn.execute("INSERT INTO t (id, x) VALUES (1, 2)")
    return conn.execute("SELECT count(*) FROM t").fetchall()


def s_failing_script() -> Any:
    conn = _table()
    conn.executescript("INSERT INTO t (x) VALUES (1); INSERT INTO missing VALUES (2);")


def s_closed_connection() -> Any:
    conn = _table()
    conn.close()
    conn.execute("SELECT 1")


def s_wrong_parameter_count() -> Any:
    _table().execute("INSERT INTO t (x) VALUES (?)", (1, 2))


def s_non_string_sql() -> Any:
    _table().execute(b"SELECT 1")  # type: ignore[arg-type]


def s_returning() -> Any:
    conn = _table()
    first = conn.execute("INSERT INTO t (x) VALUES (1), (2) RETURNING id").fetchall()
    return first, conn.execute("UPDATE t SET x = 0 RETURNING id").fetchmany(1)


def s_named_parameters() -> Any:
    conn = _table()
    conn.execute("INSERT INTO t (x) VALUES (:v)", {"v": "9780306406157"})
    return conn.execute("SELECT x FROM t WHERE x = :v", {"v": "9780306406157"}).fetchall()


def s_adapters_and_converters() -> Any:
    conn = sqlite3.connect(":memory:", detect_types=sqlite3.PARSE_DECLTYPES)
    conn.execute("CREATE TABLE d (v point)")
    sqlite3.register_converter("point", lambda b: tuple(map(int, b.split(b","))))
    conn.execute("INSERT INTO d VALUES (?)", ("1,2",))
    return conn.execute("SELECT v FROM d").fetchall()


def s_cursor_reuse_after_error() -> Any:
    cursor = _table().cursor()
    with pytest.raises(sqlite3.OperationalError):
        cursor.execute("SELECT * FROM nope")
    return cursor.execute("SELECT 5").fetchall()


SCENARIOS: list[Callable[[], Any]] = [
    value for name, value in sorted(globals().items()) if name.startswith("s_")
]


def _outcome(scenario: Callable[[], Any]) -> tuple[str, Any]:
    try:
        result = scenario()
    except Exception as exc:
        message = str(exc).replace("InstrumentedConnection", "sqlite3.Connection")
        return "raised", (type(exc), message)
    if isinstance(result, sqlite3.Connection):
        return "returned", "a connection"
    return "returned", result


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__[2:])
def test_the_application_sees_what_the_raw_driver_gives(scenario, otel):
    dbpulse.uninstrument(systems=("sqlite",))
    try:
        raw = _outcome(scenario)
    finally:
        dbpulse.instrument(systems=("sqlite",))
    assert _outcome(scenario) == raw
