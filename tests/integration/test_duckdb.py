"""DuckDB through dbpulse: one span and one duration per execution, on real DuckDB."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.trace import StatusCode

import dbpulse
from dbpulse.core.statements import statement
from tests.integration.test_autoinstrument import run_app

duckdb = pytest.importorskip("duckdb")

from dbpulse.instrumentors import duckdb as instrumentor  # noqa: E402

ISBN = "9780306406157"
OTHER = "9780140449136"
raw_connect = instrumentor._original_connect


@pytest.fixture
def duck(otel):
    dbpulse.instrument(systems=("duckdb",))
    yield otel
    dbpulse.instrument(systems=("duckdb",))


@pytest.fixture(params=["file", "memory"])
def conn(request, tmp_path: Path, duck):
    target = str(tmp_path / "books.duckdb") if request.param == "file" else ":memory:"
    c = duckdb.connect(target)
    c.execute("CREATE TABLE books (isbn VARCHAR PRIMARY KEY, title VARCHAR, price DOUBLE)")
    duck.span_exporter.clear()
    dbpulse.testing.reset()
    yield c
    c.close()


def names(otel) -> list[str]:
    return [s.name for s in otel.spans()]


def test_execute_span_has_the_duckdb_attributes(conn, duck):
    assert conn.execute("INSERT INTO books VALUES (?, ?, ?)", [ISBN, "Signals", 2.5]) is conn
    (span,) = duck.spans()
    attrs = dict(span.attributes)
    assert span.name == "INSERT books"
    assert attrs["db.system.name"] == "duckdb"
    assert attrs["db.namespace"] in ("books.duckdb", ":memory:")
    assert attrs["db.operation.name"] == "INSERT"
    assert attrs["db.collection.name"] == "books"
    assert attrs["db.query.summary"] == "INSERT books"
    assert attrs["db.query.text"] == "INSERT INTO books VALUES (?, ?, ?)"
    assert attrs["book.isbn"] == ISBN
    assert "Signals" not in repr(attrs) and "2.5" not in repr(attrs)


def test_namespace_is_the_file_name_or_memory(tmp_path: Path, duck):
    on_file = duckdb.connect(str(tmp_path / "shop.duckdb"))
    in_memory = duckdb.connect()
    on_file.execute("SELECT 1")
    in_memory.execute("SELECT 1")
    assert [s.attributes["db.namespace"] for s in duck.spans()] == ["shop.duckdb", ":memory:"]


def test_connections_stay_duckdb_connections(conn, duck):
    assert isinstance(conn, duckdb.DuckDBPyConnection)
    cursor = conn.cursor()
    assert isinstance(cursor, duckdb.DuckDBPyConnection) and cursor is not conn
    assert cursor.execute("SELECT count(*) FROM books").fetchall() == [(0,)]
    assert conn.duplicate().execute("SELECT 1").fetchone() == (1,)
    assert conn.begin() is conn and conn.commit() is conn
    assert repr(conn).startswith("<_duckdb.DuckDBPyConnection")
    assert names(duck) == ["SELECT books", "SELECT"]
    with conn as entered:  # closes the connection on exit
        assert entered is conn


def test_a_relation_runs_on_every_read_and_never_for_building(conn, duck):
    conn.execute("INSERT INTO books VALUES (?, 't', 1.0), (?, 'u', 2.0)", [ISBN, OTHER])
    duck.span_exporter.clear()
    dbpulse.testing.reset()
    rel = conn.sql("SELECT * FROM books")
    never = conn.sql("SELECT title FROM books")
    chained = rel.filter("price > 1").project("isbn, price").order("isbn").limit(5)
    grouped = rel.aggregate("count(*) AS n")
    assert duck.spans() == []  # built, not run
    assert isinstance(rel, duckdb.DuckDBPyRelation) and isinstance(chained, duckdb.DuckDBPyRelation)
    assert len(rel.fetchall()) == 2
    assert len(rel.fetchall()) == 2
    assert chained.fetchall() == [(OTHER, 2.0)]
    assert grouped.fetchall() == [(2,)]
    # Spans are named by their summary: a chain reads as DuckDB's generated query (its CTE
    # steps are SELECTs), a plain relation as what it says.
    spans = duck.spans()
    assert names(duck)[:2] == ["SELECT books"] * 2
    assert names(duck) == [s.attributes["db.query.summary"] for s in spans]
    assert {
        (s.attributes["db.operation.name"], s.attributes["db.collection.name"]) for s in spans
    } == {("SELECT", "books")}
    texts = [s.attributes["db.query.text"] for s in duck.spans()]
    assert texts[0] == texts[1] == "SELECT * FROM books"
    assert "price > ?" in texts[2]
    assert never is not None
    assert otel_count(duck) == 4


def otel_count(otel, **attributes: Any) -> float:
    return otel.value("db.client.operation.duration", **attributes)


def test_joins_and_set_operations_of_observed_relations(conn, duck):
    conn.execute("INSERT INTO books VALUES (?, 't', 1.0)", [ISBN])
    left = conn.table("books")
    right = conn.sql("SELECT isbn, 3 AS stock FROM books")
    joined = left.join(right, "isbn")
    both = left.project("isbn").union(right.project("isbn"))
    duck.span_exporter.clear()
    assert joined.fetchall() == [(ISBN, "t", 1.0, 3)]
    assert both.fetchall() == [(ISBN,), (ISBN,)]
    assert len(duck.spans()) == 2


def test_every_reading_and_writing_method_is_one_execution(conn, duck, tmp_path: Path):
    conn.execute("INSERT INTO books VALUES (?, 't', 1.0)", [ISBN])
    rel = conn.sql("SELECT * FROM books")
    duck.span_exporter.clear()
    runs: list[tuple[str, Callable[[], Any]]] = [
        ("SELECT books", lambda: rel.show()),
        ("SELECT books", lambda: rel.to_dicts()),
        ("SELECT books", lambda: list(rel.iter_rows())),
        ("SELECT books", lambda: rel.materialize()),
        ("COPY books", lambda: rel.write_csv(str(tmp_path / "out.csv"))),
        ("COPY books", lambda: rel.write_parquet(str(tmp_path / "out.parquet"))),
        ("CREATE copy", lambda: rel.create("copy")),
        ("INSERT copy", lambda: rel.insert_into("copy")),
        ("CREATE VIEW", lambda: rel.create_view("shelf")),
    ]
    for name, run in runs:
        before = len(duck.spans())
        run()
        spans = duck.spans()[before:]
        assert len(spans) == 1, (name, [s.name for s in spans])
        assert spans[0].name.startswith(name.split()[0]), (name, spans[0].name)
    assert conn.execute("SELECT count(*) FROM copy").fetchall() == [(2,)]


def test_dataframe_and_arrow_reads_are_executions(conn, duck):
    pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    rel = conn.sql("SELECT 1 AS x")
    rel.df()
    rel.arrow()
    assert names(duck) == ["SELECT", "SELECT"]


def test_statements_other_than_select_run_at_sql(conn, duck):
    kept = conn.sql(f"INSERT INTO books VALUES ('{ISBN}', 'a', 1), ('{OTHER}', 'b', 2)")
    (span,) = duck.spans()
    assert span.name == "INSERT books"
    assert duck.value("dbpulse.db.writes", **{"db.operation.name": "INSERT"}) == 2
    assert kept.fetchall() == [(2,)]  # DuckDB's kept result: reading it runs nothing
    assert len(duck.spans()) == 1
    conn.sql("UPDATE books SET price = price + 1")
    conn.sql("CREATE TABLE other (x INT)")
    assert names(duck) == ["INSERT books", "UPDATE books", "CREATE TABLE other"]
    assert duck.value("dbpulse.db.writes", **{"db.operation.name": "UPDATE"}) == 2


def test_write_counts_are_duckdbs_own(conn, duck):
    conn.execute("INSERT INTO books VALUES (?, 'a', 1), (?, 'b', 2), ('x', 'c', 3)", [ISBN, OTHER])
    conn.executemany("INSERT INTO books VALUES (?, 'd', ?)", [("y", 4), ("z", 5)])
    conn.execute("UPDATE books SET price = 0 WHERE price > ?", [1.5])
    conn.execute("DELETE FROM books WHERE price = 0")
    conn.execute("SELECT * FROM books").fetchall()
    writes = {
        op: duck.value("dbpulse.db.writes", **{"db.operation.name": op})
        for op in ("INSERT", "UPDATE", "DELETE", "SELECT")
    }
    assert writes == {"INSERT": 5, "UPDATE": 4, "DELETE": 4, "SELECT": 0}
    batch = next(s for s in duck.spans() if s.attributes.get("db.operation.batch.size"))
    assert batch.attributes["db.operation.batch.size"] == 2
    assert duck.value("dbpulse.db.isbn.writes", **{"book.isbn": ISBN}) == 1


def test_positional_named_and_prepared_parameters(conn, duck):
    conn.execute("INSERT INTO books VALUES ($isbn, $title, 1)", {"isbn": ISBN, "title": "n"})
    conn.execute("INSERT INTO books VALUES (?, ?, 2)", (OTHER, "p"))
    (prepared,) = conn.extract_statements("SELECT title FROM books WHERE isbn = ?")
    assert conn.execute(prepared, [ISBN]).fetchall() == [("n",)]
    rel = conn.sql("SELECT title FROM books WHERE isbn = $isbn", params={"isbn": OTHER})
    assert rel.fetchall() == [("p",)]
    spans = duck.spans()
    assert [s.attributes.get("book.isbn") for s in spans] == [ISBN, OTHER, ISBN, OTHER]
    assert spans[0].attributes["db.query.text"] == "INSERT INTO books VALUES ($isbn, $title, ?)"
    assert spans[2].attributes["db.query.text"] == "SELECT title FROM books WHERE isbn = ?"


def test_errors_carry_duckdbs_exception_class(conn, duck):
    conn.execute("INSERT INTO books VALUES (?, 'a', 1)", [ISBN])
    with pytest.raises(duckdb.ConstraintException):
        conn.execute("INSERT INTO books VALUES (?, 'again', 1)", [ISBN])
    with pytest.raises(duckdb.CatalogException):
        conn.execute("SELECT * FROM missing")
    failed = [s for s in duck.spans() if s.status.status_code is StatusCode.ERROR]
    assert [s.attributes["error.type"] for s in failed] == [
        "ConstraintException",
        "CatalogException",
    ]
    assert otel_count(duck, **{"error.type": "ConstraintException"}) == 1
    assert duck.value("dbpulse.db.writes") == 1


def test_module_level_functions_use_the_default_connection(tmp_path: Path, duck):
    csv = tmp_path / "books.csv"
    csv.write_text(f"isbn,title\n{ISBN},a\n")
    (tmp_path / "books.json").write_text(json.dumps([{"isbn": ISBN}]))
    assert duckdb.sql("SELECT 42").fetchall() == [(42,)]
    assert duckdb.query("SELECT 43").fetchall() == [(43,)]
    assert duckdb.execute("SELECT ?", [44]).fetchall() == [(44,)]
    assert duckdb.read_csv(str(csv)).fetchall() == [(int(ISBN), "a")]
    assert duckdb.read_json(str(tmp_path / "books.json")).fetchall() == [(ISBN,)]
    duckdb.execute(f"COPY (SELECT 1 AS x) TO '{tmp_path / 'one.parquet'}'")
    assert duckdb.read_parquet(str(tmp_path / "one.parquet")).fetchall() == [(1,)]
    assert duckdb.sql("SELECT 1").limit(1).fetchall() == [(1,)]
    spans = duck.spans()
    assert len(spans) == 8
    assert {s.attributes["db.namespace"] for s in spans} == {":memory:"}
    own = duckdb.connect()
    assert duckdb.sql("SELECT 2", connection=own).fetchall() == [(2,)]
    assert len(duck.spans()) == 9


def test_uninstrument_and_set_enabled_stop_work_on_open_objects(conn, duck):
    rel = conn.sql("SELECT * FROM books")
    cursor = conn.cursor()
    dbpulse.uninstrument(systems=("duckdb",))
    try:
        assert conn.execute("INSERT INTO books VALUES (?, 'a', 1)", [ISBN]) is conn
        assert conn.fetchall() == [(1,)]
        assert rel.fetchall() == [(ISBN, "a", 1.0)]
        cursor.execute("SELECT 1")
        duckdb.sql("SELECT 1").fetchall()
        assert duck.spans() == [] and otel_count(duck) == 0
    finally:
        dbpulse.instrument(systems=("duckdb",))
    rel.fetchall()
    assert len(duck.spans()) == 1
    dbpulse.set_enabled(False)
    rel.fetchall()
    assert conn.execute("SELECT 1").fetchall() == [(1,)]
    assert len(duck.spans()) == 1
    dbpulse.set_enabled(True)
    rel.fetchall()
    assert len(duck.spans()) == 2


def test_instrument_connection_covers_connections_made_before(tmp_path: Path, duck):
    dbpulse.uninstrument(systems=("duckdb",))
    plain = duckdb.connect(str(tmp_path / "early.duckdb"))
    dbpulse.instrument(systems=("duckdb",))
    plain.execute("CREATE TABLE t (isbn VARCHAR)")
    assert duck.spans() == []
    observed = dbpulse.DuckDBInstrumentor.instrument_connection(plain)
    assert isinstance(observed, duckdb.DuckDBPyConnection)
    observed.execute("INSERT INTO t VALUES (?)", [ISBN])
    assert dbpulse.DuckDBInstrumentor.instrument_connection(observed) is observed
    (span,) = duck.spans()
    assert span.attributes["db.namespace"] == "early.duckdb"
    assert dbpulse.DuckDBInstrumentor.uninstrument_connection(observed) is plain


def test_a_cursor_per_thread_is_counted_exactly(tmp_path: Path, duck):
    conn = duckdb.connect(str(tmp_path / "threads.duckdb"))
    conn.execute("CREATE TABLE hits (n INT)")
    dbpulse.testing.reset()

    def work() -> None:
        cursor = conn.cursor()
        for i in range(50):
            cursor.execute("INSERT INTO hits VALUES (?)", [i])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert conn.execute("SELECT count(*) FROM hits").fetchone() == (200,)
    assert duck.value("dbpulse.db.writes", **{"db.operation.name": "INSERT"}) == 200


def _outcome(action: Callable[[Any], Any], connection: Any) -> tuple[str, Any]:
    try:
        result = action(connection)
    except Exception as exc:
        return "raised", (type(exc), str(exc))
    if isinstance(result, duckdb.DuckDBPyConnection):
        return "connection", result.fetchall() if result.description else None
    if isinstance(result, duckdb.DuckDBPyRelation):
        return "relation", (result.columns, result.fetchall())
    return "value", result


SCENARIOS: dict[str, Callable[[Any], Any]] = {
    "execute fetchall": lambda c: c.execute("SELECT * FROM t ORDER BY a").fetchall(),
    "execute fetchone": lambda c: c.execute("SELECT a FROM t ORDER BY a").fetchone(),
    "execute fetchmany": lambda c: c.execute("SELECT a FROM t ORDER BY a").fetchmany(2),
    "insert returns count": lambda c: c.execute("INSERT INTO t VALUES (9, 'z')"),
    "named params": lambda c: c.execute("SELECT $x + 1", {"x": 41}).fetchall(),
    "executemany": lambda c: c.executemany("INSERT INTO t VALUES (?, ?)", [(7, "p"), (8, "q")]),
    "sql lazy": lambda c: c.sql("SELECT b FROM t WHERE a > 1 ORDER BY a"),
    "sql write": lambda c: c.sql("UPDATE t SET b = 'u' WHERE a = 1"),
    "sql ddl": lambda c: c.sql("CREATE TABLE u (x INT)"),
    "chained": lambda c: c.table("t").filter("a < 3").order("a").project("b").fetchall(),
    "aggregate": lambda c: c.sql("SELECT * FROM t").aggregate("sum(a) AS s").fetchall(),
    "description": lambda c: c.execute("SELECT a FROM t").description,
    "constraint": lambda c: c.execute("INSERT INTO t VALUES (1, 'dup')"),
    "syntax": lambda c: c.execute("SELEC 1"),
    "missing table": lambda c: c.sql("SELECT * FROM nowhere"),
    "sql syntax": lambda c: c.sql("INSER INTO t VALUES (1)"),
    "pending result": lambda c: (c.execute("FROM range(5000)"), c.sql("SELECT 1").fetchall()),
    "rowcount": lambda c: (c.execute("DELETE FROM t WHERE a > 1"), c.rowcount)[1],
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_the_same_results_and_exceptions_as_raw_duckdb(scenario: str, duck):
    outcomes = []
    for connect in (raw_connect, duckdb.connect):
        c = connect(":memory:")
        c.execute("CREATE TABLE t (a INT PRIMARY KEY, b VARCHAR)")
        c.execute("INSERT INTO t VALUES (1, 'x'), (2, 'y'), (3, 'z')")
        outcomes.append(_outcome(SCENARIOS[scenario], c))
        c.close()
    assert isinstance(duckdb.connect(), instrumentor._ConnectionProxy)
    raw, observed = outcomes
    if raw[0] == "raised" and observed[0] == "raised":
        assert raw[1][0] is observed[1][0]
        # Messages name random relation aliases or object addresses at most.
        assert raw[1][1].split(":")[0] == observed[1][1].split(":")[0]
    else:
        assert observed == raw


# DuckDB's literal forms, as the sanitizer must leave them: (statement, sanitized text).
SANITIZED = [
    ("SELECT E'it\\'s secret'", "SELECT ?"),
    ("SELECT $$secret body$$", "SELECT ?"),
    ("SELECT $tag$secret$tag$", "SELECT ?"),
    ("SELECT INTERVAL '3 days'", "SELECT INTERVAL ?"),
    ("SELECT INTERVAL 3 DAY", "SELECT INTERVAL ? DAY"),
    ("SELECT {'k': 'secret', 'n': 42}", "SELECT {?: ?, ?: ?}"),
    ("SELECT * FROM t WHERE a = $isbn AND b = $n", "SELECT * FROM t WHERE a = $isbn AND b = $n"),
    ("SELECT [1, 2, 3]", "SELECT [?, ?, ?]"),
    ("SELECT ['secret', 'other']", "SELECT [?, ?]"),
    ("SELECT list_value(1)[1], [[1], [2]]", "SELECT list_value(?)[?], [[?], [?]]"),
    ("SELECT MAP {'k': 1}", "SELECT MAP {?: ?}"),
    ("SELECT 1::DECIMAL(10, 2)", "SELECT ?::DECIMAL(?, ?)"),  # type arguments too: no leak
]


@pytest.mark.parametrize(("sql", "sanitized"), SANITIZED)
def test_duckdb_literal_forms_are_sanitized(sql: str, sanitized: str):
    assert statement("duckdb", sql).text == sanitized
    raw = raw_connect()
    raw.execute("CREATE TABLE t (a VARCHAR, b INT)")
    raw.execute(sql, {"isbn": ISBN, "n": 1} if "$isbn" in sql else None).fetchall()  # it runs


def test_duckdb_is_a_system_of_instrument():
    assert "duckdb" in dbpulse.setup.SYSTEMS
    assert dbpulse.DuckDBInstrumentor is instrumentor.DuckDBInstrumentor


APP = f"""
import duckdb
c = duckdb.connect(":memory:")
c.execute("CREATE TABLE books (isbn VARCHAR)")
c.execute("INSERT INTO books VALUES (?)", ["{ISBN}"])
rel = c.sql("SELECT * FROM books")
rel.fetchall()
rel.fetchall()
print("app done")
"""


def _installed_entry_point() -> bool:
    group = importlib.metadata.entry_points(group="opentelemetry_instrumentor")
    return any(e.name == "dbpulse_duckdb" for e in group)


@pytest.mark.skipif(not _installed_entry_point(), reason="dbpulse_duckdb entry point not installed")
def test_opentelemetry_instrument_picks_up_duckdb(tmp_path: Path):
    launcher = shutil.which("opentelemetry-instrument")
    assert launcher
    (tmp_path / "app.py").write_text(APP)
    env = {
        **os.environ,
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": "duck-app",
    }
    result = run_app(tmp_path, env)
    spans = [line for line in result.stdout.splitlines() if line.startswith('    "name": ')]
    expected = ["CREATE TABLE books", "INSERT books", "SELECT books", "SELECT books"]
    assert sorted(spans) == [f'    "name": "{n}",' for n in expected]


def _df_insert(c: Any) -> None:
    import pandas as pd

    frame = pd.DataFrame({"v": [10, 11, 12]})  # found by DuckDB in this frame's locals
    c.execute("INSERT INTO t SELECT * FROM frame")
    assert len(frame) == 3


_SETUP = "CREATE TABLE t (v INTEGER PRIMARY KEY CHECK (v > 0)); INSERT INTO t VALUES (1), (2), (3)"
_RANGE = "INSERT INTO t SELECT range FROM range(10, 15)"
_BELOW_3 = "UPDATE t SET v = v + 100 WHERE v < 3"
# shape: (what it does on an observed connection, DuckDB's own count: the Count or the returned
# rows of the same statement run on a raw connection, or the number itself)
_DUCK_SHAPES: dict[str, tuple[Callable[[Any], Any], str | int]] = {
    "insert-select": (lambda c: c.execute(_RANGE), _RANGE),
    "insert-parameters": (lambda c: c.execute("INSERT INTO t VALUES (?), (?)", [10, 11]), 2),
    "insert-returning-read": (lambda c: c.execute(_RANGE + " RETURNING v").fetchall(), _RANGE),
    "insert-returning-df": (lambda c: c.execute(_RANGE + " RETURNING v").df(), _RANGE),
    "update": (
        lambda c: c.execute("UPDATE t SET v = v + 100 WHERE v < 3"),
        "UPDATE t SET v = v + 100 WHERE v < 3",
    ),
    "update-returning-fetchnumpy": (
        lambda c: c.execute("UPDATE t SET v = v + 100 RETURNING v").fetchnumpy(),
        "UPDATE t SET v = v + 100",
    ),
    "delete": (lambda c: c.execute("DELETE FROM t WHERE v >= 2"), "DELETE FROM t WHERE v >= 2"),
    "delete-returning-fetchone-to-end": (
        lambda c: [c.execute("DELETE FROM t RETURNING v").fetchmany(2), c.fetchone(), c.fetchone()],
        "DELETE FROM t",
    ),
    "executemany": (lambda c: c.executemany("INSERT INTO t VALUES (?)", [(10,), (11,), (12,)]), 3),
    "executemany-update": (
        lambda c: c.executemany("UPDATE t SET v = v + ? WHERE v >= ?", [(100, 1), (1000, 2)]),
        6,
    ),
    "insert-from-a-local-dataframe": (_df_insert, 3),
    "insert-or-replace": (
        lambda c: c.execute("INSERT OR REPLACE INTO t VALUES (1), (20)"),
        "INSERT OR REPLACE INTO t VALUES (1), (20)",
    ),
    "on-conflict-do-nothing": (
        lambda c: c.execute("INSERT INTO t VALUES (1), (20) ON CONFLICT DO NOTHING"),
        "INSERT INTO t VALUES (1), (20) ON CONFLICT DO NOTHING",
    ),
    "cte-insert": (
        lambda c: c.execute("WITH x AS (SELECT 10 AS v) INSERT INTO t SELECT v FROM x"),
        "WITH x AS (SELECT 10 AS v) INSERT INTO t SELECT v FROM x",
    ),
    "sql-insert": (lambda c: c.sql(_RANGE), _RANGE),
    "sql-insert-returning-unread": (lambda c: c.sql(_RANGE + " RETURNING v"), _RANGE),
    "sql-update": (lambda c: c.sql("UPDATE t SET v = v + 100"), "UPDATE t SET v = v + 100"),
    "module-execute": (lambda c: duckdb.execute(_RANGE, connection=c), _RANGE),
    "prepared-statement": (
        lambda c: c.execute(c.extract_statements("INSERT INTO t VALUES (?), (?)")[0], [10, 11]),
        2,
    ),
    "relation-insert": (lambda c: c.table("t").insert([10]), 1),
}


@pytest.mark.parametrize("shape", sorted(_DUCK_SHAPES))
def test_writes_equal_duckdbs_own_count_for_every_statement_shape(shape, duck):
    run, truth = _DUCK_SHAPES[shape]
    if isinstance(truth, str):
        twin = raw_connect()
        twin.execute(_SETUP)
        truth = twin.execute(truth).fetchall()[0][0]
    c = duckdb.connect()
    c.execute(_SETUP)
    dbpulse.testing.reset()
    run(c)
    assert truth > 0
    assert sum(instrumentor.OPERATIONS.writes_snapshot().values()) == truth


def test_copy_counts_the_rows_copied_in_and_none_out(tmp_path: Path, duck):
    data = tmp_path / "v.csv"
    data.write_text("v\n10\n11\n12\n13\n")
    bad = tmp_path / "bad.csv"
    bad.write_text("v\n20\n21\nx\n")
    c = duckdb.connect()
    c.execute(_SETUP)
    dbpulse.testing.reset()
    assert c.execute(f"COPY t FROM '{data}' (HEADER)").fetchall() == [(4,)]
    with pytest.raises(duckdb.ConversionException):
        c.execute(f"COPY t FROM '{bad}' (HEADER)")  # one statement: nothing of it stays
    c.execute(f"COPY t TO '{tmp_path / 'out.csv'}'")
    assert c.execute("SELECT count(*) FROM t").fetchone() == (7,)
    assert sum(instrumentor.OPERATIONS.writes_snapshot().values()) == 4


def test_what_duckdb_does_not_count_follows_the_rule(duck):
    """DuckDB gives no count for these (rowcount -1, or one result for several statements):
    RETURNING rows through ``execute`` count as they are read, several statements count the
    last one's rows, a failed executemany counts none, relational ``insert_into`` one row, and
    CREATE TABLE AS (DDL) none."""
    c = duckdb.connect()
    c.execute(_SETUP)
    dbpulse.testing.reset()

    def written() -> int:
        return sum(instrumentor.OPERATIONS.writes_snapshot().values())

    c.execute(_RANGE + " RETURNING v")  # five rows written, none read
    assert written() == 0
    assert len(c.execute("INSERT INTO t VALUES (20), (21) RETURNING v").fetchmany(1)) == 1
    assert written() == 1
    c.execute("INSERT INTO t VALUES (30); UPDATE t SET v = v + 100")  # 1 + 11 rows
    assert written() == 1 + 11
    with pytest.raises(duckdb.ConstraintException):
        c.executemany("INSERT INTO t VALUES (?)", [(40,), (-1,)])  # 40 stays (autocommit)
    assert written() == 12
    c.sql("SELECT range + 50 AS v FROM range(4)").insert_into("t")
    c.sql("SELECT * FROM t").create("t_copy")
    c.execute("CREATE TABLE t_again AS SELECT * FROM t")
    assert written() == 12 + 1
    assert c.execute("SELECT count(*) FROM t").fetchone() == (3 + 5 + 2 + 1 + 1 + 4,)


def test_python_objects_the_query_names_are_found_in_the_callers_scope(duck):
    """DuckDB reads a DataFrame a query names from its caller's locals and globals: through
    dbpulse's proxies the caller is still the application."""
    import pandas as pd

    c = duckdb.connect()
    local_frame = pd.DataFrame({"v": [1, 2, 3]})
    assert len(local_frame) == 3
    assert c.execute("SELECT sum(v) FROM local_frame").fetchall() == [(6,)]
    assert c.sql("SELECT count(*) FROM local_frame").fetchall() == [(3,)]
    assert c.table("local_frame").fetchall() == [(1,), (2,), (3,)]
    assert duckdb.sql("SELECT max(v) FROM local_frame").fetchall() == [(3,)]
    rel = c.sql("SELECT 1 AS v")
    assert rel.query("r", "SELECT count(*) FROM local_frame, r").fetchall() == [(3,)]

    def nested() -> Any:
        nested_frame = pd.DataFrame({"w": [7]})
        assert len(nested_frame) == 1
        return c.execute("SELECT w FROM nested_frame").fetchall()

    assert nested() == [(7,)]
    with pytest.raises(duckdb.CatalogException):  # as without dbpulse: only the caller's frame
        c.execute("SELECT * FROM nested_frame")


def test_duckdbs_warnings_point_at_the_application_line(duck):
    def warned(conn: Any) -> Any:
        conn.execute("SELECT 1 AS v")
        with pytest.warns(UserWarning) as caught:
            conn.to_arrow_table()
        return [(w.filename, w.lineno - caught[0].lineno) for w in caught], caught[0].lineno

    raw, raw_line = warned(raw_connect())
    observed, observed_line = warned(duckdb.connect())
    assert observed == raw and observed_line == raw_line
    assert raw[0][0] == __file__
