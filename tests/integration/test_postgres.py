"""PostgreSQL (psycopg 3, sync/async, pools) through dbpulse, against a real server."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from opentelemetry.trace import SpanKind, StatusCode

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
