"""SQLite scenarios of the differential table (``sqlite3`` of the standard library)."""

from __future__ import annotations

import functools
import sqlite3
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.differential._runner import Ctx, scenario

sqlite = functools.partial(scenario, "sqlite")
AUTOCOMMIT = sys.version_info >= (3, 12)  # Connection.autocommit


class MyCursor(sqlite3.Cursor):
    def hello(self) -> str:
        return "hi"


class MyConnection(sqlite3.Connection):
    def cursor(self, factory: Any = MyCursor) -> Any:  # its own default cursor class
        return super().cursor(factory)


class PlainSubclass(sqlite3.Connection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.made_by = "PlainSubclass"


class Truthless(list):
    """A parameter sequence whose truth value raises (numpy arrays behave so)."""

    def __bool__(self) -> bool:
        raise ValueError("the truth value is ambiguous")


class TruthlessMapping(dict):
    def __bool__(self) -> bool:
        raise ValueError("the truth value of a mapping is ambiguous")


class Sequence3:
    """A sequence that is neither a list nor a tuple."""

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> Any:
        if index == 0:
            return 3
        raise IndexError(index)


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y


sqlite3.register_adapter(Point, lambda p: f"{p.x};{p.y}")
sqlite3.register_converter("point", lambda b: tuple(map(int, b.replace(b";", b",").split(b","))))


def _table(database: str = ":memory:", **kwargs: Any) -> sqlite3.Connection:
    conn = sqlite3.connect(database, **kwargs)
    conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, x UNIQUE)")
    return conn


def _in_thread(fn: Any) -> Any:
    """``fn()`` in another thread; its result, or its exception raised here."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = fn()
        except Exception as exc:
            box["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


# --- connection factories ------------------------------------------------------------------


@sqlite()
def s_custom_default_cursor(ctx: Ctx) -> Any:
    conn = sqlite3.connect(":memory:", factory=MyConnection)
    cursor = conn.cursor()
    return cursor.hello(), cursor.execute("SELECT 1").fetchall(), cursor


@sqlite()
def s_subclass_factory(ctx: Ctx) -> Any:
    conn = sqlite3.connect(":memory:", factory=PlainSubclass)
    return conn.made_by, conn.execute("SELECT 1").fetchall(), conn, isinstance(conn, PlainSubclass)


@sqlite()
def s_positional_factory(ctx: Ctx) -> Any:
    conn = sqlite3.connect(":memory:", 5.0, 0, "DEFERRED", True, MyConnection)
    return conn.cursor().hello(), conn.execute("SELECT 1").fetchall(), conn


@sqlite(observed=False)
def s_partial_factory(ctx: Ctx) -> Any:
    conn = sqlite3.connect(":memory:", factory=functools.partial(sqlite3.Connection))
    return conn.execute("SELECT 2").fetchall()


@sqlite(observed=False)
def s_lambda_factory(ctx: Ctx) -> Any:
    conn = sqlite3.connect(":memory:", factory=lambda *a, **k: sqlite3.Connection(*a, **k))
    return conn.execute("SELECT 3").fetchall()


@sqlite(observed=False)
def s_factory_none(ctx: Ctx) -> Any:
    return sqlite3.connect(":memory:", factory=None)


@sqlite(observed=False)
def s_factory_not_callable(ctx: Ctx) -> Any:
    return sqlite3.connect(":memory:", factory=42)


@sqlite(observed=False)
def s_factory_not_a_connection(ctx: Ctx) -> Any:
    return sqlite3.connect(":memory:", factory=dict)


@sqlite(observed=False)
def s_connect_unknown_keyword(ctx: Ctx) -> Any:
    return sqlite3.connect(":memory:", colour="blue")


@sqlite(observed=False)
def s_connect_no_database(ctx: Ctx) -> Any:
    return sqlite3.connect()  # type: ignore[call-arg]


@sqlite(observed=False)
def s_connect_missing_directory(ctx: Ctx) -> Any:
    return sqlite3.connect(str(ctx.tmp / "no" / "such" / "dir.db"))


@sqlite()
def s_connect_uri_read_only(ctx: Ctx) -> Any:
    path = ctx.tmp / "ro.db"
    _table(str(path)).close()
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.execute("INSERT INTO t (x) VALUES (1)")


@sqlite()
def s_connect_pathlike(ctx: Ctx) -> Any:
    conn = _table(ctx.tmp / "p.db")  # type: ignore[arg-type]
    conn.execute("INSERT INTO t (x) VALUES (1)")
    return conn.total_changes, conn.execute("SELECT x FROM t").fetchall()


# --- cursor factories -----------------------------------------------------------------------


@sqlite(observed=False)
def s_cursor_dict(ctx: Ctx) -> Any:
    return sqlite3.connect(":memory:").cursor(dict)


@sqlite(observed=False)
def s_cursor_none(ctx: Ctx) -> Any:
    return sqlite3.connect(":memory:").cursor(None)


@sqlite(observed=False)
def s_cursor_callable(ctx: Ctx) -> Any:
    conn = sqlite3.connect(":memory:")
    return conn.cursor(lambda c: sqlite3.Cursor(c)).execute("SELECT 4").fetchall()


@sqlite(observed=False)
def s_cursor_partial(ctx: Ctx) -> Any:
    conn = sqlite3.connect(":memory:")
    return conn.cursor(functools.partial(MyCursor)).execute("SELECT 5").fetchall()


@sqlite()
def s_cursor_class_keyword(ctx: Ctx) -> Any:
    cursor = sqlite3.connect(":memory:").cursor(factory=MyCursor)
    return cursor.hello(), cursor.execute("SELECT 6").fetchall(), cursor


@sqlite(observed=False)
def s_cursor_factory_returns_other(ctx: Ctx) -> Any:
    return sqlite3.connect(":memory:").cursor(lambda c: 1)


@sqlite(observed=False)
def s_cursor_too_many_arguments(ctx: Ctx) -> Any:
    return sqlite3.connect(":memory:").cursor(MyCursor, 2)


@sqlite(observed=False)
def s_cursor_unknown_keyword(ctx: Ctx) -> Any:
    return sqlite3.connect(":memory:").cursor(kind=MyCursor)


@sqlite()
def s_cursor_connection_attribute(ctx: Ctx) -> Any:
    conn = sqlite3.connect(":memory:")
    cursor = conn.cursor()
    cursor.execute("SELECT 1")
    return cursor.connection is conn, cursor.description, cursor.arraysize


# --- row factories, text factories ----------------------------------------------------------


@sqlite()
def s_row_factory(ctx: Ctx) -> Any:
    conn = _table()
    conn.row_factory = sqlite3.Row
    conn.execute("INSERT INTO t (x) VALUES (5)")
    row = conn.execute("SELECT id, x FROM t").fetchone()
    return type(row).__name__, dict(row), row.keys(), row["x"], row[0], len(row)


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {d[0]: v for d, v in zip(cursor.description, row, strict=True)}


@sqlite()
def s_dict_row_factory(ctx: Ctx) -> Any:
    conn = _table()
    conn.row_factory = _dict_row
    conn.executemany("INSERT INTO t (x) VALUES (?)", [(1,), (2,)])
    return conn.execute("SELECT id, x FROM t ORDER BY id").fetchall()


@sqlite()
def s_cursor_row_factory(ctx: Ctx) -> Any:
    conn = _table()
    cursor = conn.cursor()
    cursor.row_factory = lambda c, r: list(r)
    cursor.execute("INSERT INTO t (x) VALUES ('a') RETURNING id, x")
    return cursor.fetchall(), conn.execute("SELECT x FROM t").fetchall()


@sqlite()
def s_row_factory_raises(ctx: Ctx) -> Any:
    conn = sqlite3.connect(":memory:")
    conn.row_factory = lambda c, r: 1 / 0
    return conn.execute("SELECT 1").fetchall()


@sqlite()
def s_text_factory_bytes(ctx: Ctx) -> Any:
    conn = sqlite3.connect(":memory:")
    conn.text_factory = bytes
    return conn.execute("SELECT 'abc', 1, 2.5, x'00ff', NULL").fetchall()


@sqlite()
def s_text_factory_undecodable(ctx: Ctx) -> Any:
    conn = sqlite3.connect(":memory:")
    return conn.execute("SELECT CAST(x'ff' AS TEXT)").fetchall()


# --- adapters and converters ----------------------------------------------------------------


@sqlite()
def s_adapters_and_converters(ctx: Ctx) -> Any:
    conn = sqlite3.connect(":memory:", detect_types=sqlite3.PARSE_DECLTYPES)
    conn.execute("CREATE TABLE d (v point)")
    conn.execute("INSERT INTO d VALUES (?)", ("1,2",))
    conn.execute("INSERT INTO d VALUES (?)", (Point(3, 4),))
    return conn.execute("SELECT v FROM d").fetchall()


@sqlite()
def s_converter_by_column_name(ctx: Ctx) -> Any:
    conn = sqlite3.connect(":memory:", detect_types=sqlite3.PARSE_COLNAMES)
    return conn.execute('SELECT ? AS "p [point]", ? AS plain', (Point(5, 6), "7")).fetchall()


@sqlite()
def s_adapter_raises(ctx: Ctx) -> Any:
    class Bad:
        pass

    sqlite3.register_adapter(Bad, lambda b: 1 / 0)
    sqlite3.connect(":memory:").execute("SELECT ?", (Bad(),))


@sqlite()
def s_unsupported_parameter_type(ctx: Ctx) -> Any:
    sqlite3.connect(":memory:").execute("SELECT ?", (object(),))


@sqlite()
def s_integer_overflow(ctx: Ctx) -> Any:
    sqlite3.connect(":memory:").execute("SELECT ?", (2**70,))


@sqlite()
def s_value_types_round_trip(ctx: Ctx) -> Any:
    conn = sqlite3.connect(":memory:")
    params = (1, 2.5, "text", b"\x00\x01", None, True, memoryview(b"mv"), bytearray(b"ba"))
    return conn.execute("SELECT ?, ?, ?, ?, ?, ?, ?, ?", params).fetchall()


# --- threads --------------------------------------------------------------------------------


@sqlite()
def s_other_thread_refused(ctx: Ctx) -> Any:
    conn = _table()
    conn.execute("SELECT 1")
    return _in_thread(lambda: conn.execute("SELECT 1"))


@sqlite()
def s_other_thread_cursor_refused(ctx: Ctx) -> Any:
    cursor = _table().cursor()
    return _in_thread(lambda: cursor.execute("SELECT 1"))


@sqlite()
def s_other_thread_allowed(ctx: Ctx) -> Any:
    conn = _table(check_same_thread=False)
    _in_thread(lambda: conn.execute("INSERT INTO t (x) VALUES (1)"))
    _in_thread(lambda: conn.executemany("INSERT INTO t (x) VALUES (?)", [(2,), (3,)]))
    return conn.execute("SELECT x FROM t").fetchall(), conn.total_changes


@sqlite()
def s_thread_per_connection(ctx: Ctx) -> Any:
    path = str(ctx.tmp / "threads.db")
    _table(path).close()

    def work(n: int) -> Any:
        conn = sqlite3.connect(path, timeout=10)
        with conn:
            conn.execute("INSERT INTO t (x) VALUES (?)", (n,))
        conn.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(sqlite3.connect(path).execute("SELECT x FROM t").fetchall())


# --- closed objects -------------------------------------------------------------------------


@sqlite(observed=False)
def s_closed_connection(ctx: Ctx) -> Any:
    conn = _table()
    conn.close()
    conn.execute("SELECT 1")


@sqlite(observed=False)
def s_closed_connection_executemany(ctx: Ctx) -> Any:
    conn = _table()
    conn.close()
    conn.executemany("INSERT INTO t (x) VALUES (?)", [(1,)])


@sqlite(observed=False)
def s_closed_connection_executescript(ctx: Ctx) -> Any:
    conn = _table()
    conn.close()
    conn.executescript("SELECT 1;")


@sqlite(observed=False)
def s_closed_connection_cursor(ctx: Ctx) -> Any:
    conn = _table()
    conn.close()
    conn.cursor()


@sqlite(observed=False)
def s_closed_connection_commit(ctx: Ctx) -> Any:
    conn = _table()
    conn.close()
    conn.close()  # twice is fine
    conn.commit()


@sqlite(observed=False)
def s_closed_cursor(ctx: Ctx) -> Any:
    cursor = _table().cursor()
    cursor.close()
    cursor.execute("SELECT 1")


@sqlite()
def s_closed_cursor_fetch(ctx: Ctx) -> Any:
    cursor = _table().cursor()
    cursor.execute("SELECT 1")
    cursor.close()
    return cursor.fetchall()


@sqlite()
def s_cursor_of_closed_connection(ctx: Ctx) -> Any:
    conn = _table()
    cursor = conn.cursor()
    conn.close()
    cursor.execute("SELECT 1")


# --- wrong arguments ------------------------------------------------------------------------


@sqlite()
def s_wrong_parameter_count(ctx: Ctx) -> Any:
    _table().execute("INSERT INTO t (x) VALUES (?)", (1, 2))


@sqlite()
def s_too_few_parameters(ctx: Ctx) -> Any:
    _table().execute("INSERT INTO t (x) VALUES (?)")


@sqlite()
def s_missing_named_parameter(ctx: Ctx) -> Any:
    _table().execute("INSERT INTO t (x) VALUES (:v)", {"w": 1})


@sqlite()
def s_named_parameters_as_sequence(ctx: Ctx) -> Any:
    conn = _table()
    conn.execute("INSERT INTO t (x) VALUES (:v)", (1,))
    return conn.execute("SELECT x FROM t").fetchall()


@sqlite()
def s_parameters_not_a_sequence(ctx: Ctx) -> Any:
    _table().execute("SELECT ?", 1)


@sqlite(observed=False)
def s_non_string_sql(ctx: Ctx) -> Any:
    _table().execute(b"SELECT 1")  # type: ignore[arg-type]


@sqlite(observed=False)
def s_execute_without_arguments(ctx: Ctx) -> Any:
    _table().execute()  # type: ignore[call-arg]


@sqlite(observed=False)
def s_cursor_execute_without_arguments(ctx: Ctx) -> Any:
    _table().cursor().execute()  # type: ignore[call-arg]


@sqlite(observed=False)
def s_execute_three_arguments(ctx: Ctx) -> Any:
    _table().execute("SELECT ?", (1,), (2,))  # type: ignore[call-arg]


@sqlite(observed=False)
def s_execute_keyword_sql(ctx: Ctx) -> Any:
    return _table().execute(sql="SELECT 1").fetchall()  # type: ignore[call-arg]


@sqlite(observed=False)
def s_executemany_keyword(ctx: Ctx) -> Any:
    conn = _table()
    conn.executemany("INSERT INTO t (x) VALUES (?)", seq_of_parameters=[(1,)])  # type: ignore[call-arg]


@sqlite(observed=False)
def s_executescript_keyword(ctx: Ctx) -> Any:
    _table().executescript(sql_script="SELECT 1;")  # type: ignore[call-arg]


@sqlite(observed=False)
def s_executescript_bytes(ctx: Ctx) -> Any:
    _table().executescript(b"SELECT 1;")  # type: ignore[arg-type]


@sqlite()
def s_two_statements(ctx: Ctx) -> Any:
    _table().execute("SELECT 1; SELECT 2")


@sqlite()
def s_null_character(ctx: Ctx) -> Any:
    _table().execute("SELECT 1\x00")


@sqlite()
def s_syntax_error(ctx: Ctx) -> Any:
    _table().execute("SELEC 1")


@sqlite()
def s_integrity_error_codes(ctx: Ctx) -> Any:
    conn = _table()
    conn.execute("INSERT INTO t (x) VALUES (1)")
    conn.execute("INSERT INTO t (x) VALUES (1)")


@sqlite()
def s_executemany_select(ctx: Ctx) -> Any:
    _table().executemany("SELECT ?", [(1,)])


@sqlite()
def s_executemany_not_iterable(ctx: Ctx) -> Any:
    _table().executemany("INSERT INTO t (x) VALUES (?)", 5)


@sqlite()
def s_executemany_rows_not_sequences(ctx: Ctx) -> Any:
    _table().executemany("INSERT INTO t (x) VALUES (?)", [1, 2])


@sqlite()
def s_str_subclass_sql(ctx: Ctx) -> Any:
    class Query(str):
        pass

    conn = _table()
    conn.execute(Query("INSERT INTO t (x) VALUES (1)"))
    return conn.execute(Query("SELECT x FROM t")).fetchall()


# --- odd parameter types --------------------------------------------------------------------


@sqlite()
def s_truthless_parameters(ctx: Ctx) -> Any:
    conn = _table()
    conn.execute("INSERT INTO t (x) VALUES (?)", Truthless([7]))
    return conn.execute("SELECT x FROM t").fetchall()


@sqlite()
def s_truthless_rows_in_executemany(ctx: Ctx) -> Any:
    conn = _table()
    conn.executemany("INSERT INTO t (x) VALUES (?)", Truthless([Truthless([1]), Truthless([2])]))
    return conn.execute("SELECT x FROM t").fetchall()


@sqlite()
def s_truthless_mapping(ctx: Ctx) -> Any:
    conn = _table()
    conn.execute("INSERT INTO t (x) VALUES (:v)", TruthlessMapping(v="9780306406157"))
    return conn.execute("SELECT x FROM t").fetchall()


@sqlite()
def s_custom_sequence_parameters(ctx: Ctx) -> Any:
    return _table().execute("SELECT ?", Sequence3()).fetchall()


@sqlite()
def s_list_parameters(ctx: Ctx) -> Any:
    return _table().execute("SELECT ?, ?", [1, "a"]).fetchall()


@sqlite()
def s_named_parameters(ctx: Ctx) -> Any:
    conn = _table()
    conn.execute("INSERT INTO t (x) VALUES (:v)", {"v": "9780306406157", "unused": 1})
    return conn.execute("SELECT x FROM t WHERE x = :v", {"v": "9780306406157"}).fetchall()


@sqlite()
def s_executemany_generator(ctx: Ctx) -> Any:
    conn = _table()
    cursor = conn.executemany("INSERT INTO t (x) VALUES (?)", ((i,) for i in range(5)))
    return cursor.rowcount, conn.execute("SELECT count(*), sum(x) FROM t").fetchall()


@sqlite()
def s_executemany_iterator(ctx: Ctx) -> Any:
    conn = _table()
    cursor = conn.executemany("INSERT INTO t (x) VALUES (?)", iter([(1,), (2,)]))
    return cursor.rowcount, conn.execute("SELECT x FROM t").fetchall()


@sqlite()
def s_executemany_dicts(ctx: Ctx) -> Any:
    conn = _table()
    conn.executemany("INSERT INTO t (x) VALUES (:v)", [{"v": 1}, {"v": 2}])
    return conn.execute("SELECT x FROM t").fetchall()


@sqlite()
def s_executemany_generator_raises(ctx: Ctx) -> Any:
    conn = _table()

    def rows() -> Iterator[tuple[int]]:
        yield (1,)
        yield (2,)
        raise LookupError("the source ran dry")

    with pytest.raises(LookupError) as caught:
        conn.executemany("INSERT INTO t (x) VALUES (?)", rows())
    return str(caught.value), conn.execute("SELECT x FROM t").fetchall()


@sqlite()
def s_executemany_empty(ctx: Ctx) -> Any:
    conn = _table()
    cursor = conn.executemany("INSERT INTO t (x) VALUES (?)", [])
    return cursor.rowcount, conn.total_changes


@sqlite()
def s_executemany_constraint_midway(ctx: Ctx) -> Any:
    conn = _table()
    with pytest.raises(sqlite3.IntegrityError):
        conn.executemany("INSERT INTO t (x) VALUES (?)", [(1,), (2,), (1,), (3,)])
    return conn.execute("SELECT x FROM t").fetchall(), conn.total_changes


# --- scripts --------------------------------------------------------------------------------


@sqlite()
def s_failing_script(ctx: Ctx) -> Any:
    conn = _table()
    conn.executescript("INSERT INTO t (x) VALUES (1); INSERT INTO missing VALUES (2);")


@sqlite()
def s_failing_script_effects(ctx: Ctx) -> Any:
    conn = _table()
    with pytest.raises(sqlite3.OperationalError):
        conn.executescript("INSERT INTO t (x) VALUES (1); INSERT INTO missing VALUES (2);")
    return conn.execute("SELECT x FROM t").fetchall(), conn.total_changes, conn.in_transaction


@sqlite()
def s_script_commits_pending_transaction(ctx: Ctx) -> Any:
    conn = _table(str(ctx.tmp / "s.db"))
    conn.execute("INSERT INTO t (x) VALUES (1)")
    pending = conn.in_transaction
    conn.executescript("INSERT INTO t (x) VALUES (2); INSERT INTO t (x) VALUES (3);")
    other = sqlite3.connect(str(ctx.tmp / "s.db"))
    return pending, conn.in_transaction, other.execute("SELECT count(*) FROM t").fetchall()


@sqlite()
def s_script_returns_cursor(ctx: Ctx) -> Any:
    cursor = _table().cursor()
    returned = cursor.executescript("INSERT INTO t (x) VALUES (1);")
    return returned is cursor, cursor.rowcount, cursor.lastrowid


# --- backup, iterdump, context managers, transactions ---------------------------------------


@sqlite()
def s_backup_into(ctx: Ctx) -> Any:
    source, target = _table(), sqlite3.connect(":memory:")
    source.execute("INSERT INTO t (x) VALUES (1)")
    source.commit()
    source.backup(target)
    return target.execute("SELECT x FROM t").fetchall()


@sqlite()
def s_backup_from_file_with_progress(ctx: Ctx) -> Any:
    source = _table(str(ctx.tmp / "b.db"))
    source.executemany("INSERT INTO t (x) VALUES (?)", [(str(i) * 500,) for i in range(50)])
    source.commit()
    target = sqlite3.connect(":memory:")
    calls: list[tuple[int, int]] = []
    source.backup(target, pages=2, progress=lambda status, remaining, total: calls.append(1))
    return bool(calls), target.execute("SELECT count(*) FROM t").fetchall()


@sqlite()
def s_backup_into_proxy(ctx: Ctx) -> Any:
    source = _table()
    source.execute("INSERT INTO t (x) VALUES (1)")
    source.commit()
    target = ctx.proxy(sqlite3.connect(":memory:"))
    source.backup(target)
    return target.execute("SELECT x FROM t").fetchall()


@sqlite()
def s_backup_from_proxy(ctx: Ctx) -> Any:
    source = ctx.proxy(_table())
    source.execute("INSERT INTO t (x) VALUES (2)")
    source.commit()
    target = sqlite3.connect(":memory:")
    source.backup(target)
    return target.execute("SELECT x FROM t").fetchall()


@sqlite(observed=False)
def s_backup_into_itself(ctx: Ctx) -> Any:
    conn = _table()
    conn.backup(conn)


@sqlite(observed=False)
def s_backup_into_not_a_connection(ctx: Ctx) -> Any:
    _table().backup(object())  # type: ignore[arg-type]


@sqlite()
def s_iterdump(ctx: Ctx) -> Any:
    conn = _table()
    conn.execute("INSERT INTO t (x) VALUES ('a')")
    conn.execute("CREATE INDEX tx ON t (x)")
    conn.execute("CREATE VIEW v AS SELECT x FROM t")
    return list(conn.iterdump())


@sqlite()
def s_iterdump_proxy(ctx: Ctx) -> Any:
    conn = ctx.proxy(_table())
    conn.execute("INSERT INTO t (x) VALUES ('b')")
    return list(conn.iterdump())


@sqlite()
def s_context_manager_rollback(ctx: Ctx) -> Any:
    conn = _table()
    with pytest.raises(sqlite3.IntegrityError), conn:
        conn.execute("INSERT INTO t (id, x) VALUES (1, 1)")
        conn.execute("INSERT INTO t (id, x) VALUES (1, 2)")
    return conn.execute("SELECT count(*) FROM t").fetchall()


@sqlite()
def s_context_manager_commit(ctx: Ctx) -> Any:
    path = str(ctx.tmp / "c.db")
    conn = _table(path)
    with conn as entered:
        entered.execute("INSERT INTO t (x) VALUES (1)")
    return entered is conn, sqlite3.connect(path).execute("SELECT x FROM t").fetchall()


@sqlite()
def s_proxy_context_manager(ctx: Ctx) -> Any:
    path = str(ctx.tmp / "pc.db")
    conn = ctx.proxy(_table(path))
    with conn as entered:
        entered.execute("INSERT INTO t (x) VALUES (1)")
    with pytest.raises(ZeroDivisionError), conn:
        conn.execute("INSERT INTO t (x) VALUES (2)")
        1 / 0  # noqa: B018
    return entered is conn, sqlite3.connect(path).execute("SELECT x FROM t").fetchall()


@sqlite()
def s_proxy_attributes(ctx: Ctx) -> Any:
    conn = ctx.proxy(_table())
    conn.row_factory = sqlite3.Row
    conn.isolation_level = None
    row = conn.execute("SELECT 1 AS one").fetchone()
    return isinstance(conn, sqlite3.Connection), conn.isolation_level, dict(row)


@sqlite()
def s_rollback_and_in_transaction(ctx: Ctx) -> Any:
    conn = _table()
    conn.commit()
    conn.execute("INSERT INTO t (x) VALUES (1)")
    before = conn.in_transaction
    conn.rollback()
    return before, conn.in_transaction, conn.execute("SELECT count(*) FROM t").fetchall()


@sqlite()
def s_isolation_level_none(ctx: Ctx) -> Any:
    conn = _table(isolation_level=None)
    conn.execute("BEGIN")
    conn.execute("INSERT INTO t (x) VALUES (1)")
    inside = conn.in_transaction
    conn.execute("COMMIT")
    return inside, conn.in_transaction, conn.isolation_level


@sqlite(observed=AUTOCOMMIT)
def s_autocommit_attribute(ctx: Ctx) -> Any:
    if not AUTOCOMMIT:
        return sqlite3.connect(":memory:").autocommit  # AttributeError on 3.11
    conn = sqlite3.connect(":memory:", autocommit=True)
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (1)")
    first = conn.autocommit, conn.in_transaction
    conn.autocommit = False
    conn.execute("INSERT INTO t VALUES (2)")
    second = conn.autocommit, conn.in_transaction
    conn.rollback()
    return first, second, conn.execute("SELECT x FROM t").fetchall()


@sqlite(observed=False)
def s_autocommit_keyword(ctx: Ctx) -> Any:
    return sqlite3.connect(":memory:", autocommit="yes")


# --- blobs, functions, callbacks ------------------------------------------------------------


@sqlite()
def s_blob_io(ctx: Ctx) -> Any:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE b (data BLOB)")
    conn.execute("INSERT INTO b VALUES (zeroblob(8))")
    with conn.blobopen("b", "data", 1) as blob:
        blob.write(b"abcd")
        blob.seek(0)
        first = blob.read(6), len(blob), blob.tell()
    blob = conn.blobopen("b", "data", 1, readonly=True)
    with pytest.raises(sqlite3.OperationalError) as caught:
        blob.write(b"x")
    blob.close()
    return first, str(caught.value), conn.execute("SELECT data FROM b").fetchall()


@sqlite(observed=False)
def s_blob_missing_row(ctx: Ctx) -> Any:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE b (data BLOB)")
    conn.blobopen("b", "data", 99)


@sqlite()
def s_create_function(ctx: Ctx) -> Any:
    conn = sqlite3.connect(":memory:")
    conn.create_function("twice", 1, lambda v: v * 2, deterministic=True)
    return conn.execute("SELECT twice(21), twice('ab')").fetchall()


@sqlite()
def s_function_raises(ctx: Ctx) -> Any:
    conn = sqlite3.connect(":memory:")
    conn.create_function("boom", 0, lambda: 1 / 0)
    conn.execute("SELECT boom()").fetchall()


@sqlite()
def s_create_aggregate_and_collation(ctx: Ctx) -> Any:
    class Longest:
        def __init__(self) -> None:
            self.best = ""

        def step(self, value: str) -> None:
            self.best = max(self.best, value, key=len)

        def finalize(self) -> str:
            return self.best

    conn = _table()
    conn.create_aggregate("longest", 1, Longest)
    conn.create_collation("reverse", lambda a, b: (a < b) - (a > b))
    conn.executemany("INSERT INTO t (x) VALUES (?)", [("a",), ("ccc",), ("bb",)])
    longest = conn.execute("SELECT longest(x) FROM t").fetchall()
    return longest, conn.execute("SELECT x FROM t ORDER BY x COLLATE reverse").fetchall()


@sqlite()
def s_window_function(ctx: Ctx) -> Any:
    class Total:
        def __init__(self) -> None:
            self.n = 0

        def step(self, v: int) -> None:
            self.n += v

        def inverse(self, v: int) -> None:
            self.n -= v

        def value(self) -> int:
            return self.n

        def finalize(self) -> int:
            return self.n

    conn = _table()
    conn.create_window_function("total", 1, Total)
    conn.executemany("INSERT INTO t (x) VALUES (?)", [(1,), (2,), (3,)])
    sql = "SELECT x, total(x) OVER (ORDER BY x ROWS 1 PRECEDING) FROM t"
    return conn.execute(sql).fetchall()


@sqlite()
def s_trace_callback(ctx: Ctx) -> Any:
    conn = _table()
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    conn.execute("INSERT INTO t (x) VALUES (?)", (1,))
    conn.execute("INSERT INTO t (x) VALUES (2) RETURNING id").fetchall()
    conn.executemany("INSERT INTO t (x) VALUES (?)", [(3,), (4,)])
    conn.executescript("UPDATE t SET x = x + 10;")
    conn.commit()
    return seen


@sqlite()
def s_authorizer_denies(ctx: Ctx) -> Any:
    conn = _table()
    conn.set_authorizer(lambda action, *args: sqlite3.SQLITE_DENY if action == 18 else 0)
    conn.execute("INSERT INTO t (x) VALUES (1)")


@sqlite()
def s_progress_handler_interrupts(ctx: Ctx) -> Any:
    conn = sqlite3.connect(":memory:")
    conn.set_progress_handler(lambda: 1, 1)
    conn.execute("WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM c) SELECT * FROM c")


# --- counters: total_changes, lastrowid, rowcount -------------------------------------------


@sqlite()
def s_counters(ctx: Ctx) -> Any:
    conn = _table()
    cursor = conn.cursor()
    seen = []
    for sql, params in [
        ("INSERT INTO t (x) VALUES (?)", (1,)),
        ("INSERT INTO t (x) VALUES (?)", (2,)),
        ("UPDATE t SET x = x + 100", ()),
        ("DELETE FROM t WHERE x > 101", ()),
        ("SELECT * FROM t", ()),
    ]:
        cursor.execute(sql, params)
        seen.append((cursor.rowcount, cursor.lastrowid, conn.total_changes))
    cursor.executemany("INSERT INTO t (x) VALUES (?)", [(5,), (6,), (7,)])
    seen.append((cursor.rowcount, cursor.lastrowid, conn.total_changes))
    return seen


@sqlite()
def s_connection_execute_counters(ctx: Ctx) -> Any:
    conn = _table()
    first = conn.execute("INSERT INTO t (x) VALUES (1)")
    second = conn.execute("INSERT INTO t (x) VALUES (2), (3)")
    return first.rowcount, first.lastrowid, second.rowcount, second.lastrowid, conn.total_changes


# --- RETURNING and upserts ------------------------------------------------------------------


@sqlite()
def s_returning(ctx: Ctx) -> Any:
    conn = _table()
    first = conn.execute("INSERT INTO t (x) VALUES (1), (2) RETURNING id").fetchall()
    return first, conn.execute("UPDATE t SET x = 0 RETURNING id").fetchmany(1)


@sqlite()
def s_returning_counters_while_reading(ctx: Ctx) -> Any:
    conn = _table()
    cursor = conn.execute("INSERT INTO t (x) VALUES (1), (2), (3) RETURNING id, x")
    seen = [(cursor.rowcount, conn.total_changes)]
    seen.append((cursor.fetchone(), cursor.rowcount, conn.total_changes))
    seen.append((list(cursor), cursor.rowcount, conn.total_changes, cursor.lastrowid))
    return seen, cursor


@sqlite()
def s_returning_cursor_reused(ctx: Ctx) -> Any:
    conn = _table()
    cursor = conn.cursor()
    cursor.execute("INSERT INTO t (x) VALUES (1), (2) RETURNING id")
    one = cursor.fetchone()
    cursor.execute("SELECT count(*) FROM t")
    return one, cursor.fetchall(), cursor.rowcount, cursor


@sqlite()
def s_returning_never_read(ctx: Ctx) -> Any:
    conn = _table()
    cursor = conn.execute("DELETE FROM t RETURNING id")
    cursor.close()
    return conn.total_changes, cursor


@sqlite()
def s_returning_error_midway(ctx: Ctx) -> Any:
    conn = _table()
    conn.execute("INSERT INTO t (x) VALUES (5)")
    cursor = conn.execute("INSERT INTO t (x) VALUES (4), (5) RETURNING id")
    return cursor.fetchall()


@sqlite()
def s_upsert(ctx: Ctx) -> Any:
    conn = _table()
    sql = "INSERT INTO t (id, x) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET x = excluded.x"
    seen = []
    for params in [(1, "a"), (1, "b"), (2, "c")]:
        cursor = conn.execute(sql, params)
        seen.append((cursor.rowcount, cursor.lastrowid))
    return seen, conn.execute("SELECT * FROM t").fetchall(), conn.total_changes


class ClosingCursor(sqlite3.Cursor):
    """A cursor whose own close() still reads from it (a helper that drains, then closes)."""

    def close(self) -> Any:
        self.rest = self.fetchall()
        return super().close()


def _after(fn: Any) -> Any:
    """What ``fn()`` gives, or the type and message of what it raises."""
    try:
        return fn()
    except Exception as exc:
        return type(exc).__name__, str(exc)


@sqlite()
def s_returning_partly_read_then_closed(ctx: Ctx) -> Any:
    conn = _table()
    cursor = conn.execute("INSERT INTO t (x) VALUES (1), (2), (3) RETURNING id")
    first = cursor.fetchone()
    counters = (cursor.rowcount, conn.total_changes)
    cursor.close()
    return first, counters, cursor.rowcount, conn.total_changes, _after(cursor.fetchone)


@sqlite()
def s_returning_partly_read_then_dropped(ctx: Ctx) -> Any:
    conn = _table()
    cursor = conn.cursor()
    cursor.execute("INSERT INTO t (x) VALUES (1), (2), (3) RETURNING id")
    first = cursor.fetchone()
    del cursor
    conn.execute("DELETE FROM t RETURNING id")  # never read, dropped at once
    return first, conn.total_changes, conn.execute("SELECT count(*) FROM t").fetchone()


@sqlite()
def s_returning_partly_read_then_reused(ctx: Ctx) -> Any:
    conn = _table()
    conn.row_factory = lambda cursor, row: {"row": row}
    cursor = conn.cursor()
    cursor.execute("INSERT INTO t (x) VALUES (1), (2), (3) RETURNING id, x")
    first = cursor.fetchone()
    cursor.execute("SELECT x FROM t ORDER BY x")
    return first, cursor.fetchall(), cursor.rowcount, conn.total_changes


@sqlite()
def s_returning_pending_when_connection_closes(ctx: Ctx) -> Any:
    conn = _table()
    cursor = conn.execute("INSERT INTO t (x) VALUES (1), (2) RETURNING id")
    first = cursor.fetchone()
    conn.close()
    return first, _after(cursor.fetchone), _after(cursor.close), _after(lambda: conn.total_changes)


@sqlite()
def s_returning_pending_at_commit(ctx: Ctx) -> Any:
    conn = _table()
    cursor = conn.execute("INSERT INTO t (x) VALUES (1), (2) RETURNING id")
    first = cursor.fetchone()
    committed = _after(conn.commit)
    rest = cursor.fetchall()
    return first, committed, rest, _after(conn.commit), conn.total_changes


@sqlite()
def s_returning_on_a_cursor_with_its_own_close(ctx: Ctx) -> Any:
    conn = _table()
    cursor = conn.cursor(ClosingCursor)
    cursor.execute("INSERT INTO t (x) VALUES (1), (2), (3) RETURNING x")
    first = cursor.fetchone()
    cursor.close()
    return first, cursor.rest, cursor.rowcount, conn.total_changes, type(cursor)


@sqlite()
def s_returning_behind_a_cte_partly_read(ctx: Ctx) -> Any:
    conn = _table()
    sql = "WITH v(x) AS (VALUES (1), (2), (3)) INSERT INTO t (x) SELECT x FROM v RETURNING id"
    cursor = conn.execute(sql)
    first = cursor.fetchone()
    rest = list(cursor)
    return first, rest, cursor.rowcount, conn.total_changes


@sqlite()
def s_executemany_returning(ctx: Ctx) -> Any:
    conn = _table()
    cursor = conn.cursor()
    outcome = _after(
        lambda: cursor.executemany("INSERT INTO t (x) VALUES (?) RETURNING id", [(1,), (2,)])
    )
    return outcome, cursor.rowcount, conn.total_changes


@sqlite()
def s_executemany_fails_midway(ctx: Ctx) -> Any:
    conn = _table()
    cursor = conn.cursor()
    outcome = _after(lambda: cursor.executemany("INSERT INTO t (x) VALUES (?)", [(1,), (2,), (1,)]))
    return outcome, cursor.rowcount, conn.total_changes, conn.execute("SELECT x FROM t").fetchall()


@sqlite()
def s_insert_or_fail_keeps_earlier_rows(ctx: Ctx) -> Any:
    conn = _table()
    conn.execute("INSERT INTO t (x) VALUES (3)")
    cursor = conn.cursor()
    sql = "INSERT OR FAIL INTO t (x) SELECT value FROM json_each('[1, 2, 3, 4]')"
    outcome = _after(lambda: cursor.execute(sql))
    return outcome, cursor.rowcount, conn.total_changes, conn.execute("SELECT x FROM t").fetchall()


@sqlite()
def s_upsert_do_nothing_returning(ctx: Ctx) -> Any:
    conn = _table()
    sql = "INSERT INTO t (x) VALUES (?) ON CONFLICT(x) DO NOTHING RETURNING id"
    return [conn.execute(sql, (v,)).fetchall() for v in (1, 1, 2)], conn.total_changes


@sqlite()
def s_replace_and_insert_or_ignore(ctx: Ctx) -> Any:
    conn = _table()
    conn.execute("INSERT INTO t (id, x) VALUES (1, 'a')")
    replaced = conn.execute("REPLACE INTO t (id, x) VALUES (1, 'b')").rowcount
    ignored = conn.execute("INSERT OR IGNORE INTO t (id, x) VALUES (1, 'c')").rowcount
    return replaced, ignored, conn.execute("SELECT * FROM t").fetchall(), conn.total_changes


@sqlite()
def s_cursor_reuse_after_error(ctx: Ctx) -> Any:
    cursor = _table().cursor()
    with pytest.raises(sqlite3.OperationalError):
        cursor.execute("SELECT * FROM nope")
    return cursor.execute("SELECT 5").fetchall()


@sqlite()
def s_fetchmany_and_iteration(ctx: Ctx) -> Any:
    conn = _table()
    conn.executemany("INSERT INTO t (x) VALUES (?)", [(i,) for i in range(7)])
    cursor = conn.execute("SELECT x FROM t ORDER BY x")
    cursor.arraysize = 3
    return cursor.fetchmany(), cursor.fetchmany(2), next(cursor), list(cursor), cursor.fetchone()


class CountingConnection(sqlite3.Connection):
    """A connection whose cursor() needs an argument and counts its calls."""

    made = 0

    def cursor(self, label: str, factory: Any = sqlite3.Cursor) -> Any:  # type: ignore[override]
        type(self).made += 1
        return super().cursor(factory)


@sqlite()
def s_returning_on_connection_with_own_cursor(ctx: Ctx) -> Any:
    conn = sqlite3.connect(":memory:", factory=MyConnection)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, x)")
    cursor = conn.execute("INSERT INTO t (x) VALUES (1) RETURNING id")
    return cursor, cursor.fetchall()


@sqlite()
def s_returning_on_connection_whose_cursor_needs_arguments(ctx: Ctx) -> Any:
    CountingConnection.made = 0
    conn = sqlite3.connect(":memory:", factory=CountingConnection)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, x)")
    rows = conn.execute("INSERT INTO t (x) VALUES (1), (2) RETURNING id").fetchall()
    return rows, CountingConnection.made, conn.cursor("mine").execute("SELECT 1").fetchall()


@sqlite()
def s_returning_through_proxy_of_own_cursor_connection(ctx: Ctx) -> Any:
    conn = ctx.proxy(sqlite3.connect(":memory:", factory=MyConnection))
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, x)")
    cursor = conn.execute("INSERT INTO t (x) VALUES (1) RETURNING id")
    return cursor, cursor.fetchall(), conn.cursor()


@sqlite()
def s_returning_with_row_factory(ctx: Ctx) -> Any:
    conn = _table()
    conn.row_factory = sqlite3.Row
    row = conn.execute("INSERT INTO t (x) VALUES (9) RETURNING id, x").fetchone()
    return row, conn.execute("SELECT count(*) FROM t").fetchone()


@sqlite()
def s_warning_for_named_placeholders_given_a_sequence(ctx: Ctx) -> Any:
    conn = _table()
    conn.execute("INSERT INTO t (x) VALUES (:v)", (1,))
    return conn.execute("SELECT x FROM t").fetchall()


class LoggingConnection(sqlite3.Connection):
    """A connection subclass that overrides execute and calls the driver's."""

    log: list[str] = []

    def execute(self, sql: str, *args: Any) -> Any:  # type: ignore[override]
        type(self).log.append(sql)
        return super().execute(sql, *args)


class LoggingCursor(sqlite3.Cursor):
    def execute(self, sql: str, *args: Any) -> Any:  # type: ignore[override]
        LoggingConnection.log.append(f"cursor: {sql}")
        return super().execute(sql, *args)


@sqlite()
def s_subclass_overriding_execute(ctx: Ctx) -> Any:
    LoggingConnection.log = []
    conn = sqlite3.connect(":memory:", factory=LoggingConnection)
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (1) RETURNING x").fetchall()
    cursor = conn.cursor(LoggingCursor)
    returned = cursor.execute("SELECT x FROM t")
    return LoggingConnection.log, returned is cursor, cursor.fetchall()


@sqlite()
def s_class_names_and_repr(ctx: Ctx) -> Any:
    conn = _table()
    cursor = conn.execute("SELECT 1")
    names = [
        (type(o).__qualname__, type(o).__module__, repr(type(o)), _repr(o))
        for o in (conn, cursor, conn.cursor(MyCursor))
    ]
    return names, isinstance(conn, sqlite3.Connection), isinstance(cursor, sqlite3.Cursor)


def _repr(obj: Any) -> str:
    return repr(obj).split(" at 0x")[0]


@sqlite(observed=False)
def s_cursor_is_not_a_context_manager(ctx: Ctx) -> Any:
    with _table().cursor():  # type: ignore[attr-defined]
        pass


@sqlite(observed=False)
def s_connection_cannot_be_pickled(ctx: Ctx) -> Any:
    import pickle

    pickle.dumps(_table())


@sqlite(observed=False)
def s_cursor_cannot_be_pickled(ctx: Ctx) -> Any:
    import pickle

    pickle.dumps(_table().cursor())


@sqlite(observed=False)
def s_missing_attribute(ctx: Ctx) -> Any:
    return _table().no_such_attribute  # type: ignore[attr-defined]


@sqlite()
def s_serialize_deserialize(ctx: Ctx) -> Any:
    conn = _table()
    conn.execute("INSERT INTO t (x) VALUES ('s')")
    data = conn.serialize()
    other = sqlite3.connect(":memory:")
    other.deserialize(data)
    return other.execute("SELECT x FROM t").fetchall()


@sqlite()
def s_limits_and_interrupt(ctx: Ctx) -> Any:
    conn = sqlite3.connect(":memory:")
    old = conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, 20)
    with pytest.raises(sqlite3.DataError) as caught:
        conn.execute("SELECT 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1")
    conn.interrupt()
    return old > 20, conn.getlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH), str(caught.value)


@sqlite()
def s_setinputsizes_and_description(ctx: Ctx) -> Any:
    cursor = _table().cursor()
    cursor.setinputsizes([1])
    cursor.setoutputsize(1)
    before = cursor.description
    cursor.execute("SELECT 1 AS a, 'b' AS b")
    return before, cursor.description, cursor.rowcount, cursor.lastrowid
