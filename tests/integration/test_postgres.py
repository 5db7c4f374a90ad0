"""PostgreSQL (psycopg 3, sync/async, pools) through dbpulse, against a real server."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from dbpulse.telemetry.metrics import OPERATIONS

psycopg = pytest.importorskip("psycopg")
psycopg_pool = pytest.importorskip("psycopg_pool")

ISBN = "9780306406157"
OTHER = "9780140449136"


@pytest.fixture
def table(pg_dsn, otel):
    """A fresh table per test; spans and metrics of the setup are cleared."""
    from dbpulse.telemetry.metrics import OPERATIONS

    name = f"books_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {name} (isbn text PRIMARY KEY, title text, doc jsonb)")
    otel.span_exporter.clear()
    OPERATIONS.reset()
    yield name
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {name}")


def test_sync_execute_span_attributes(pg_dsn, table, otel):
    with psycopg.connect(pg_dsn) as conn:
        conn.execute(f"INSERT INTO {table} (isbn, title) VALUES (%s, %s)", (ISBN, "Signals"))
    (span,) = [s for s in otel.spans() if s.name.startswith("INSERT")]
    assert span.name == f"INSERT {table}"
    assert span.kind is SpanKind.CLIENT
    attrs = dict(span.attributes)
    assert attrs["db.system.name"] == "postgresql"
    assert attrs["db.namespace"] == "dbpulse"
    assert attrs["server.address"] == "127.0.0.1"
    assert attrs["server.port"] == 5432
    assert attrs["db.query.text"] == f"INSERT INTO {table} (isbn, title) VALUES (%s, %s)"
    assert attrs["book.isbn"] == ISBN
    assert "Signals" not in repr(attrs)


def test_pyformat_params_and_json_documents_yield_isbns(pg_dsn, table, otel):
    with psycopg.connect(pg_dsn) as conn:
        conn.execute(
            f"INSERT INTO {table} (isbn, doc) VALUES (%(isbn)s, %(doc)s)",
            {"isbn": "ISBN 978-0-14-044913-6", "doc": '{"related": ["0-306-40615-2"]}'},
        )
    (span,) = [s for s in otel.spans() if s.name.startswith("INSERT")]
    assert list(span.attributes["book.isbns"]) == [OTHER, ISBN]


def test_executemany_and_copy_are_writes_with_batch_sizes(pg_dsn, table, otel):
    with psycopg.connect(pg_dsn) as conn:
        cur = conn.cursor()
        cur.executemany(
            f"INSERT INTO {table} (isbn, title) VALUES (%s, %s)", [(ISBN, "a"), (OTHER, "b")]
        )
        with cur.copy(f"COPY {table} (isbn, title) FROM STDIN") as copy:
            copy.write_row(("9781402894626", "c"))
            copy.write_row(("9780451524935", "d"))
    names = [s.name for s in otel.spans()]
    assert names == [f"INSERT {table}", f"COPY {table}"]
    insert, _ = otel.spans()
    assert insert.attributes["db.operation.batch.size"] == 2
    assert otel.value("dbpulse.db.writes", **{"db.operation.name": "INSERT"}) == 2
    assert otel.value("dbpulse.db.writes", **{"db.operation.name": "COPY"}) == 2
    assert otel.value("dbpulse.db.isbn.writes", **{"book.isbn": ISBN}) == 1


def test_server_side_cursor_is_observed(pg_dsn, table, otel):
    with psycopg.connect(pg_dsn) as conn:
        conn.execute(f"INSERT INTO {table} (isbn) VALUES (%s)", (ISBN,))
        with conn.cursor(name="books_cursor") as cur:
            cur.execute(f"SELECT isbn FROM {table}")
            assert cur.fetchall() == [(ISBN,)]
    assert [s.name for s in otel.spans()] == [f"INSERT {table}", f"SELECT {table}"]


def test_errors_carry_the_sqlstate(pg_dsn, table, otel):
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"INSERT INTO {table} (isbn) VALUES (%s)", (ISBN,))
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(f"INSERT INTO {table} (isbn) VALUES (%s)", (ISBN,))
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT * FROM no_such_table")
    failed = [s for s in otel.spans() if s.status.status_code is StatusCode.ERROR]
    assert [s.attributes["error.type"] for s in failed] == ["23505", "42P01"]
    # The duplicate-key message quotes the value; it must not be exported.
    assert all(ISBN not in (s.status.description or "") for s in failed)
    assert otel.value("db.client.operation.duration", **{"error.type": "23505"}) == 1


async def test_async_connection_and_cursor(pg_dsn, table, otel):
    async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
        await conn.execute(f"INSERT INTO {table} (isbn) VALUES (%s)", (ISBN,))
        async with conn.cursor() as cur:
            await cur.executemany(f"INSERT INTO {table} (isbn) VALUES (%s)", [(OTHER,)])
            await cur.execute(f"SELECT count(*) FROM {table}")
            assert (await cur.fetchone()) == (2,)
            async with cur.copy(f"COPY {table} (isbn) FROM STDIN") as copy:
                await copy.write_row(("9781402894626",))
        async with conn.cursor(name="async_cursor") as named:
            await named.execute(f"SELECT isbn FROM {table}")
            await named.fetchall()
    assert [s.name for s in otel.spans()] == [
        f"INSERT {table}",
        f"INSERT {table}",
        f"SELECT {table}",
        f"COPY {table}",
        f"SELECT {table}",
    ]
    assert otel.value("dbpulse.db.writes", **{"db.collection.name": table}) == 3


def test_pool_connections_and_pool_metrics(pg_dsn, table, otel):
    with psycopg_pool.ConnectionPool(pg_dsn, min_size=2, max_size=3, name="books-pool") as pool:
        pool.wait()
        with pool.connection() as conn:
            conn.execute(f"INSERT INTO {table} (isbn) VALUES (%s)", (ISBN,))
            count = otel.points(
                "db.client.connection.count",
                **{"db.client.connection.pool.name": "books-pool"},
            )
            by_state = {p.attributes["db.client.connection.state"]: p.value for p in count}
            assert by_state["used"] == 1
            assert by_state["idle"] >= 1
        (maximum,) = otel.points(
            "db.client.connection.max", **{"db.client.connection.pool.name": "books-pool"}
        )
        assert maximum.value == 3
        (waited,) = otel.points(
            "db.client.connection.wait_time", **{"db.client.connection.pool.name": "books-pool"}
        )
        assert waited.count == 1
    assert [s.name for s in otel.spans()] == [f"INSERT {table}"]


def test_pool_timeouts_and_pending_requests(pg_dsn, otel):
    with psycopg_pool.ConnectionPool(
        pg_dsn, min_size=1, max_size=1, timeout=0.2, name="tiny-pool"
    ) as pool:
        held = pool.getconn()
        with pytest.raises(psycopg_pool.PoolTimeout):
            pool.getconn()
        pool.putconn(held)
    (timeouts,) = otel.points(
        "db.client.connection.timeouts", **{"db.client.connection.pool.name": "tiny-pool"}
    )
    assert timeouts.value == 1


async def test_async_pool(pg_dsn, table, otel):
    async with psycopg_pool.AsyncConnectionPool(pg_dsn, min_size=1, name="async-pool") as pool:
        async with pool.connection() as conn:
            await conn.execute(f"INSERT INTO {table} (isbn) VALUES (%s)", (ISBN,))
        waits = otel.points(
            "db.client.connection.wait_time", **{"db.client.connection.pool.name": "async-pool"}
        )
        assert waits and waits[0].count == 1
    assert [s.name for s in otel.spans()] == [f"INSERT {table}"]


def test_uninstrument_and_disable_stop_work_on_open_connections(pg_dsn, table, otel):
    import dbpulse

    with psycopg.connect(pg_dsn) as conn:
        dbpulse.set_enabled(False)
        conn.execute("SELECT 1")
        dbpulse.set_enabled(True)
        dbpulse.uninstrument(systems=("postgresql",))
        try:
            conn.execute("SELECT 1")
        finally:
            dbpulse.instrument(systems=("postgresql",))
        assert otel.spans() == []
        conn.execute("SELECT 1")
    assert len(otel.spans()) == 1


def test_many_operations_in_parallel_tasks_are_counted_exactly(pg_dsn, otel):
    async def worker(n: int) -> None:
        async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
            for i in range(n):
                await conn.execute("SELECT %s", (i,))

    async def main() -> None:
        await asyncio.gather(*(worker(50) for _ in range(4)))

    asyncio.run(main())
    assert otel.value("db.client.operation.duration", **{"db.operation.name": "SELECT"}) == 200


# Truth per statement shape: what each statement's command tag says it changed, which is what
# pg_stat_user_tables counts on the shape's table (n_tup_ins + n_tup_upd + n_tup_del, rows of
# aborted transactions included), flushed by the connection itself before it closes (PG 15+).
_FIVE = "INSERT INTO {t} (v) SELECT generate_series(11, 15)"


def _flush(conn: Any) -> None:
    """Make the connection's table statistics visible now (PostgreSQL 15+)."""
    if conn.info.server_version >= 150000:
        conn.rollback()
        conn.autocommit = True
        conn.execute("SELECT pg_stat_force_next_flush()")


async def _aflush(conn: Any) -> None:
    if conn.info.server_version >= 150000:
        await conn.rollback()
        await conn.set_autocommit(True)
        await conn.execute("SELECT pg_stat_force_next_flush()")


def _fails(fn: Any) -> None:
    with pytest.raises(psycopg.Error):
        fn()


def _copy_failing(c: Any, t: str) -> None:
    def copy() -> None:
        with c.cursor().copy(f"COPY {t} (v) FROM STDIN") as cp:
            cp.write(b"10\n11\n-1\n12\n")

    _fails(copy)


def _copy_rows(c: Any, t: str) -> None:
    with c.cursor().copy(f"COPY {t} (v) FROM STDIN") as cp:
        for v in (10, 11, 12, 13):
            cp.write_row((v,))


def _copy_raw(c: Any, t: str) -> None:
    with c.cursor().copy(f"COPY {t} (v) FROM STDIN") as cp:
        cp.write(b"10\n11\n")
        cp.write(b"12\n")


def _copy_to(c: Any, t: str) -> None:
    with c.cursor().copy(f"COPY {t} TO STDOUT") as cp:
        assert b"".join(bytes(chunk) for chunk in cp).count(b"\n") == 3


def _pipeline(c: Any, t: str) -> None:
    with c.pipeline():
        c.execute(f"UPDATE {t} SET v = v + 100")
        c.execute(f"INSERT INTO {t} (v) VALUES (%s), (%s)", (10, 11))
        cur = c.cursor()
        cur.execute(f"DELETE FROM {t} WHERE v >= 101 RETURNING v")
    assert len(cur.fetchall()) == 3


def _pipeline_many(c: Any, t: str) -> None:
    with c.pipeline():
        c.cursor().executemany(f"INSERT INTO {t} (v) VALUES (%s)", [(10,), (11,)])
        c.execute(f"DELETE FROM {t} WHERE v < 3")


def _pipeline_error(c: Any, t: str) -> None:
    def run() -> None:
        with c.pipeline():
            c.execute(f"UPDATE {t} SET v = v + 100")  # 3, then rolled back
            c.execute(f"INSERT INTO {t} (v) VALUES (-1)")  # fails: 0
            c.execute(f"UPDATE {t} SET v = v + 100")  # aborted: 0

    _fails(run)
    c.rollback()
    c.execute(f"UPDATE {t} SET v = v + 1000 WHERE v = 1")


def _pipeline_one_cursor(c: Any, t: str) -> None:
    cur = c.cursor()
    with c.pipeline() as pipeline:
        cur.execute(f"UPDATE {t} SET v = v + 100")
        cur.executemany(f"INSERT INTO {t} (v) VALUES (%s)", [(10,), (11,)])
        cur.execute(f"DELETE FROM {t} WHERE v = 10")
        pipeline.sync()
        cur.execute("SELECT 1")
        cur.execute(f"INSERT INTO {t} (v) VALUES (12)")


def _trigger(c: Any, t: str) -> None:
    c.execute(f"CREATE TABLE {t}_log (v int)")
    c.execute(
        f"CREATE FUNCTION {t}_tf() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN INSERT INTO {t}_log VALUES (new.v); RETURN new; END $$"
    )
    c.execute(f"CREATE TRIGGER {t}_tr AFTER INSERT ON {t} FOR EACH ROW EXECUTE FUNCTION {t}_tf()")
    c.execute(f"INSERT INTO {t} (v) VALUES (70), (71)")  # the log's rows are the trigger's


def _pool(c: Any, t: str, dsn: str) -> None:
    pool = psycopg_pool.ConnectionPool(dsn, min_size=1, max_size=1)
    with pool, pool.connection() as pc:
        pc.execute(f"UPDATE {t} SET v = v + 100 RETURNING v").fetchone()
        pc.cursor().executemany(f"INSERT INTO {t} (v) VALUES (%s)", [(10,), (11,)])
        _flush(pc)


async def _async_shape(kind: str, t: str, dsn: str) -> None:
    if kind == "pool":
        pool = psycopg_pool.AsyncConnectionPool(dsn, min_size=1, max_size=1, open=False)
        async with pool, pool.connection() as pc:
            await pc.execute(f"UPDATE {t} SET v = v + 100")
            await _aflush(pc)
        return
    async with await psycopg.AsyncConnection.connect(dsn) as c:
        if kind == "returning":
            await (await c.execute(_FIVE.format(t=t) + " RETURNING id")).fetchone()
        elif kind == "executemany-returning":
            await c.cursor().executemany(
                f"INSERT INTO {t} (v) VALUES (%s) RETURNING id", [(10,), (11,)], returning=True
            )
        elif kind == "executemany-fails":
            with pytest.raises(psycopg.errors.CheckViolation):
                await c.cursor().executemany(
                    f"INSERT INTO {t} (v) VALUES (%s)", [(10,), (11,), (-1,)]
                )
        elif kind == "multi":
            await c.execute(f"INSERT INTO {t} (v) VALUES (10), (11); UPDATE {t} SET v = v + 100")
        elif kind == "pipeline":
            async with c.pipeline():
                await c.execute(f"UPDATE {t} SET v = v + 100")
                await c.execute(f"INSERT INTO {t} (v) VALUES (10)")
        elif kind == "copy":
            async with c.cursor().copy(f"COPY {t} (v) FROM STDIN") as cp:
                await cp.write_row((10,))
                await cp.write_row((11,))
        await _aflush(c)


def _async(kind: str) -> Any:
    return lambda c, t, dsn: asyncio.run(_async_shape(kind, t, dsn))


def _executemany_fails(c: Any, t: str, autocommit: bool) -> None:
    c.autocommit = autocommit
    # The first two statements succeed (and their rows are rolled back with the failure).
    _fails(
        lambda: c.cursor().executemany(
            f"INSERT INTO {t} (v) VALUES (%s)", [(10,), (11,), (-1,), (12,)]
        )
    )


_MERGE = (
    "MERGE INTO {t} USING (SELECT generate_series(2, 5) AS v) s ON {t}.v = s.v "
    "WHEN MATCHED THEN UPDATE SET v = {t}.v + 100 WHEN NOT MATCHED THEN INSERT (v) VALUES (s.v)"
)
# shape: (what it does on connection c and table t [, the DSN], the rows it changed)
_SHAPES: dict[str, tuple[Any, int]] = {
    "returning-unread": (lambda c, t: c.execute(_FIVE.format(t=t) + " RETURNING id"), 5),
    "returning-partly-read": (
        lambda c, t: c.execute(_FIVE.format(t=t) + " RETURNING id").fetchone(),
        5,
    ),
    "returning-read": (lambda c, t: c.execute(_FIVE.format(t=t) + " RETURNING id").fetchall(), 5),
    "update-returning": (lambda c, t: c.execute(f"UPDATE {t} SET v = 10 * v RETURNING v"), 3),
    "delete-returning": (lambda c, t: c.execute(f"DELETE FROM {t} RETURNING v").fetchone(), 3),
    "executemany": (
        lambda c, t: c.cursor().executemany(
            f"INSERT INTO {t} (v) VALUES (%s)", [(10,), (11,), (12,)]
        ),
        3,
    ),
    "executemany-returning": (
        lambda c, t: c.cursor().executemany(
            f"INSERT INTO {t} (v) VALUES (%s) RETURNING id", [(10,), (11,), (12,)], returning=True
        ),
        3,
    ),
    "executemany-update-returning": (
        lambda c, t: c.cursor().executemany(
            f"UPDATE {t} SET v = v + %s RETURNING id", [(100,), (1000,)], returning=True
        ),
        6,
    ),
    "executemany-fails-midway-autocommit": (lambda c, t: _executemany_fails(c, t, True), 2),
    "executemany-fails-midway-transaction": (lambda c, t: _executemany_fails(c, t, False), 2),
    "copy-write-row": (_copy_rows, 4),
    "copy-write-raw": (_copy_raw, 3),
    "copy-failing-row": (_copy_failing, 0),
    "copy-to": (_copy_to, 0),
    "cte-then-update": (
        lambda c, t: c.execute(f"WITH x AS (SELECT 1) UPDATE {t} SET v = v + 9"),
        3,
    ),
    "merge": (lambda c, t: c.execute(_MERGE.format(t=t)), 4),
    "on-conflict-do-update": (
        lambda c, t: c.execute(
            f"INSERT INTO {t} (v) VALUES (1), (2), (20) "
            "ON CONFLICT (v) DO UPDATE SET v = excluded.v + 100"
        ),
        3,
    ),
    "on-conflict-do-nothing": (
        lambda c, t: c.execute(f"INSERT INTO {t} (v) VALUES (1), (2), (20) ON CONFLICT DO NOTHING"),
        1,
    ),
    "several-statements": (
        lambda c, t: c.execute(
            f"INSERT INTO {t} (v) VALUES (10), (11); UPDATE {t} SET v = v + 100; "
            f"DELETE FROM {t} WHERE v = 103"
        ),
        8,
    ),
    "several-statements-select-last": (
        lambda c, t: c.execute(f"UPDATE {t} SET v = v + 100; SELECT * FROM {t}"),
        3,
    ),
    "pipeline": (_pipeline, 8),
    "pipeline-executemany": (_pipeline_many, 4),
    "pipeline-error": (_pipeline_error, 4),
    "pipeline-one-cursor-and-sync": (_pipeline_one_cursor, 7),
    "prepared": (
        lambda c, t: [
            c.execute(f"INSERT INTO {t} (v) VALUES (%s)", (v,), prepare=True) for v in range(10, 16)
        ],
        6,
    ),
    "trigger": (_trigger, 2),
    "pool": (_pool, 5),
    "async-returning-partly-read": (_async("returning"), 5),
    "async-executemany-returning": (_async("executemany-returning"), 2),
    "async-executemany-fails-midway": (_async("executemany-fails"), 2),
    "async-several-statements": (_async("multi"), 7),
    "async-pipeline": (_async("pipeline"), 4),
    "async-copy": (_async("copy"), 2),
    "async-pool": (_async("pool"), 3),
}


def _stat(admin: Any, table: str) -> int:
    """Rows inserted, updated and deleted in ``table``, as PostgreSQL's statistics have them."""
    admin.execute("SELECT pg_stat_clear_snapshot()")
    row = admin.execute(
        "SELECT n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables WHERE relname = %s",
        (table,),
    ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize("shape", sorted(_SHAPES))
def test_writes_equal_postgresqls_own_count_for_every_statement_shape(shape, pg_dsn, otel):
    run, rows = _SHAPES[shape]
    t = f"shape_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        flushes = admin.info.server_version >= 150000
        if shape == "merge" and not flushes:
            pytest.skip("MERGE is PostgreSQL 15+")
        admin.execute(f"CREATE TABLE {t} (id serial PRIMARY KEY, v int UNIQUE CHECK (v > 0))")
        admin.execute(f"INSERT INTO {t} (v) VALUES (1), (2), (3)")
        if flushes:
            admin.execute("SELECT pg_stat_force_next_flush()")
        before = _stat(admin, t)
        try:
            with psycopg.connect(pg_dsn) as c:
                OPERATIONS.reset()
                if shape.startswith(("async-", "pool")):
                    run(c, t, pg_dsn)
                else:
                    run(c, t)
                written = sum(OPERATIONS.writes_snapshot().values())
                _flush(c)
            assert written == rows
            if flushes:
                assert _stat(admin, t) - before == rows  # PostgreSQL's own count agrees
        finally:
            admin.execute(f"DROP TABLE IF EXISTS {t}, {t}_log CASCADE")
            admin.execute(f"DROP FUNCTION IF EXISTS {t}_tf() CASCADE")


def test_rows_postgresql_reports_under_no_write_tag_follow_the_rule(pg_dsn, table, otel):
    """What a statement's command tag cannot tell: a data-modifying CTE under a SELECT counts
    one write (the tag is the SELECT's); rows written inside a DO block or a function are not
    the statement's own (the tag is DO's or the SELECT's) and are not counted."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            f"CREATE FUNCTION {table}_f() RETURNS int LANGUAGE sql AS "
            f"$$ INSERT INTO {table} (isbn) VALUES ('f1'), ('f2') RETURNING 1 $$"
        )
        try:
            OPERATIONS.reset()
            cur = conn.execute(
                f"WITH x AS (INSERT INTO {table} (isbn) VALUES ('a'), ('b'), ('c') RETURNING 1) "
                "SELECT count(*) FROM x"
            )
            assert (cur.statusmessage, cur.fetchall()) == ("SELECT 1", [(3,)])
            conn.execute(f"WITH x AS (DELETE FROM {table} RETURNING 1) SELECT * FROM x")
            assert sum(OPERATIONS.writes_snapshot().values()) == 2  # one per statement
            conn.execute(f"DO $$ BEGIN INSERT INTO {table} (isbn) VALUES ('d'); END $$")
            conn.execute(f"SELECT {table}_f()")
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (3,)
            assert sum(OPERATIONS.writes_snapshot().values()) == 2
        finally:
            conn.execute(f"DROP FUNCTION {table}_f()")
