"""PostgreSQL scenarios of the differential table (psycopg 3, sync and async).

Each scenario works in TEMP tables of its own connection, so runs never meet.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import decimal
import functools
from typing import Any

import pytest

from tests.integration.differential._runner import Ctx, scenario

psycopg = pytest.importorskip("psycopg")
from psycopg import rows, sql  # noqa: E402

pg = functools.partial(scenario, "postgresql")


def _connect(ctx: Ctx, **kwargs: Any) -> Any:
    conn = psycopg.connect(ctx.dsn, **kwargs)
    conn.execute("CREATE TEMP TABLE t (id serial PRIMARY KEY, x text UNIQUE, n numeric)")
    return conn


class Truthless(list):
    def __bool__(self) -> bool:
        raise ValueError("the truth value is ambiguous")


@dataclasses.dataclass
class Book:
    id: int
    x: str


@pg()
def s_insert_returning_types(ctx: Ctx) -> Any:
    with _connect(ctx) as conn:
        cur = conn.execute(
            "INSERT INTO t (x, n) VALUES (%s, %s), (%s, %s) RETURNING id, x, n",
            ("a", decimal.Decimal("1.50"), "b", 2),
        )
        first = cur.rowcount, cur.statusmessage, cur.fetchall()
        when = conn.execute("SELECT %s::date, %s::jsonb", (datetime.date(2026, 1, 2), "[1]"))
        return first, when.fetchall()


@pg()
def s_cursor_execute_and_description(ctx: Ctx) -> Any:
    with _connect(ctx) as conn, conn.cursor() as cur:
        returned = cur.execute("SELECT 1 AS one, 'x'::text AS two")
        names = [d.name for d in cur.description]
        return returned is cur, names, cur.fetchone(), cur.fetchone()


@pg()
def s_keyword_arguments(ctx: Ctx) -> Any:
    with _connect(ctx) as conn, conn.cursor() as cur:
        cur.execute(query="SELECT %(v)s::int + 1", params={"v": 41}, prepare=True)
        return cur.fetchall()


@pg()
def s_binary_cursor(ctx: Ctx) -> Any:
    with _connect(ctx) as conn:
        return conn.execute("SELECT %s::int, %b::text", (1, "two"), binary=True).fetchall()


@pg()
def s_executemany_generator(ctx: Ctx) -> Any:
    with _connect(ctx) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO t (x) VALUES (%s)", ((str(i),) for i in range(4)))
        return cur.rowcount, conn.execute("SELECT count(*) FROM t").fetchall()


@pg()
def s_executemany_dicts_returning(ctx: Ctx) -> Any:
    with _connect(ctx) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO t (x) VALUES (%(x)s) RETURNING x",
            [{"x": "a"}, {"x": "b"}],
            returning=True,
        )
        results = [cur.fetchall()]
        while cur.nextset():
            results.append(cur.fetchall())
        return results, cur.rowcount


@pg()
def s_executemany_keyword_params_seq(ctx: Ctx) -> Any:
    with _connect(ctx) as conn, conn.cursor() as cur:
        cur.executemany(query="INSERT INTO t (x) VALUES (%s)", params_seq=iter([("a",), ("b",)]))
        return cur.rowcount


@pg()
def s_executemany_not_iterable(ctx: Ctx) -> Any:
    with _connect(ctx) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO t (x) VALUES (%s)", 5)


@pg()
def s_executemany_unique_violation(ctx: Ctx) -> Any:
    with _connect(ctx, autocommit=True) as conn, conn.cursor() as cur:
        with pytest.raises(psycopg.errors.UniqueViolation) as caught:
            cur.executemany("INSERT INTO t (x) VALUES (%s)", [("a",), ("b",), ("a",)])
        return type(caught.value).__name__, conn.execute("SELECT x FROM t").fetchall()


@pg()
def s_truthless_parameters(ctx: Ctx) -> Any:
    with _connect(ctx) as conn:
        conn.execute("INSERT INTO t (x) VALUES (%s)", Truthless(["a"]))
        return conn.execute("SELECT x FROM t").fetchall()


@pg()
def s_wrong_parameter_count(ctx: Ctx) -> Any:
    with _connect(ctx) as conn:
        conn.execute("SELECT %s", (1, 2))


@pg()
def s_unadaptable_parameter(ctx: Ctx) -> Any:
    with _connect(ctx) as conn:
        conn.execute("SELECT %s", (object(),))


@pg()
def s_syntax_error(ctx: Ctx) -> Any:
    with _connect(ctx) as conn:
        conn.execute("SELEC 1")


@pg()
def s_undefined_table_then_failed_transaction(ctx: Ctx) -> Any:
    with _connect(ctx) as conn:
        with pytest.raises(psycopg.errors.UndefinedTable) as first:
            conn.execute("SELECT * FROM no_such_table_dbpulse")
        with pytest.raises(psycopg.errors.InFailedSqlTransaction) as second:
            conn.execute("SELECT 1")
        conn.rollback()
        return (
            str(first.value),
            first.value.sqlstate,
            str(second.value),
            conn.execute("SELECT 2").fetchall(),
        )


@pg()
def s_error_diagnostics(ctx: Ctx) -> Any:
    with _connect(ctx, autocommit=True) as conn:
        conn.execute("INSERT INTO t (x) VALUES ('a')")
        with pytest.raises(psycopg.errors.UniqueViolation) as caught:
            conn.execute("INSERT INTO t (x) VALUES ('a')")
        diag = caught.value.diag
        return diag.sqlstate, diag.constraint_name, diag.message_primary


@pg()
def s_transaction_block_rollback(ctx: Ctx) -> Any:
    with _connect(ctx, autocommit=True) as conn:
        with pytest.raises(ZeroDivisionError), conn.transaction():
            conn.execute("INSERT INTO t (x) VALUES ('gone')")
            1 / 0  # noqa: B018
        with conn.transaction() as outer:
            conn.execute("INSERT INTO t (x) VALUES ('kept')")
            with pytest.raises(psycopg.errors.UniqueViolation), conn.transaction():
                conn.execute("INSERT INTO t (x) VALUES ('kept')")
        return type(outer).__name__, conn.execute("SELECT x FROM t").fetchall()


@pg()
def s_commit_rollback_status(ctx: Ctx) -> Any:
    with _connect(ctx) as conn:
        conn.commit()
        conn.execute("INSERT INTO t (x) VALUES ('a')")
        status = conn.info.transaction_status.name
        conn.rollback()
        return (
            status,
            conn.info.transaction_status.name,
            conn.execute("SELECT count(*) FROM t").fetchall(),
        )


@pg()
def s_row_factories(ctx: Ctx) -> Any:
    with _connect(ctx) as conn:
        conn.execute("INSERT INTO t (x) VALUES ('a')")
        query = "SELECT id, x FROM t"
        found = [
            conn.cursor(row_factory=f).execute(query).fetchall()
            for f in (rows.dict_row, rows.tuple_row, rows.class_row(Book))
        ]
        named = conn.cursor(row_factory=rows.namedtuple_row).execute(query).fetchone()
        conn.row_factory = rows.dict_row
        return found, named._asdict(), type(named).__name__, conn.execute(query).fetchall()


@pg()
def s_server_side_cursor(ctx: Ctx) -> Any:
    with _connect(ctx) as conn:
        conn.execute("INSERT INTO t (x) SELECT g::text FROM generate_series(1, 10) g")
        with conn.cursor(name="dbpulse_diff", scrollable=True) as cur:
            cur.itersize = 3
            cur.execute("SELECT x FROM t ORDER BY id")
            first = cur.fetchmany(4)
            cur.scroll(1)
            return first, cur.fetchone(), list(cur), cur.name


@pg()
def s_server_side_cursor_error(ctx: Ctx) -> Any:
    with _connect(ctx) as conn, conn.cursor(name="dbpulse_bad") as cur:
        cur.execute("SELECT * FROM no_such_table_dbpulse")


@pg()
def s_stream(ctx: Ctx) -> Any:
    with _connect(ctx) as conn:
        return list(conn.cursor().stream("SELECT generate_series(1, 5)"))


@pg()
def s_copy_in_and_out(ctx: Ctx) -> Any:
    with _connect(ctx) as conn, conn.cursor() as cur:
        with cur.copy("COPY t (x, n) FROM STDIN") as copy:
            copy.write_row(("a", 1))
            copy.write_row(("b", None))
        written = cur.rowcount
        with cur.copy("COPY (SELECT x, n FROM t ORDER BY x) TO STDOUT") as copy:
            out = [tuple(r) for r in copy.rows()]
        return written, out


@pg()
def s_copy_bad_data(ctx: Ctx) -> Any:
    with _connect(ctx) as conn, conn.cursor() as cur, cur.copy("COPY t (x, n) FROM STDIN") as copy:
        copy.write(b"a\tnot-a-number\n")


@pg()
def s_copy_block_raises(ctx: Ctx) -> Any:
    with _connect(ctx) as conn, conn.cursor() as cur:
        with pytest.raises(KeyError), cur.copy("COPY t (x) FROM STDIN") as copy:
            copy.write_row(("a",))
            raise KeyError("the application's own error")
        conn.rollback()
        return conn.execute("SELECT count(*) FROM t").fetchall()


@pg()
def s_composed_and_bytes_queries(ctx: Ctx) -> Any:
    with _connect(ctx) as conn:
        query = sql.SQL("INSERT INTO {} (x) VALUES ({})").format(
            sql.Identifier("t"), sql.Placeholder()
        )
        conn.execute(query, ("a",))
        conn.execute(b"INSERT INTO t (x) VALUES ('b')")
        return conn.execute(sql.SQL("SELECT x FROM t ORDER BY x")).fetchall()


@pg(observed=False)
def s_closed_connection(ctx: Ctx) -> Any:
    conn = _connect(ctx)
    conn.close()
    conn.execute("SELECT 1")


@pg()
def s_closed_cursor(ctx: Ctx) -> Any:
    with _connect(ctx) as conn:
        cur = conn.cursor()
        cur.close()
        cur.execute("SELECT 1")


@pg()
def s_fetch_without_result(ctx: Ctx) -> Any:
    with _connect(ctx) as conn:
        conn.execute("INSERT INTO t (x) VALUES ('a')").fetchall()


@pg()
def s_pipeline_mode(ctx: Ctx) -> Any:
    with _connect(ctx) as conn:
        with conn.pipeline():
            a = conn.execute("INSERT INTO t (x) VALUES ('a') RETURNING id")
            b = conn.execute("SELECT count(*) FROM t")
        return a.fetchall(), b.fetchall()


@pg()
def s_async_connection(ctx: Ctx) -> Any:
    async def run() -> Any:
        async with await psycopg.AsyncConnection.connect(ctx.dsn) as conn:
            await conn.execute("CREATE TEMP TABLE t (x text)")
            async with conn.cursor() as cur:
                await cur.executemany("INSERT INTO t VALUES (%s)", [("a",), ("b",)])
                many = cur.rowcount
                async with cur.copy("COPY t FROM STDIN") as copy:
                    await copy.write_row(("c",))
            async with conn.cursor(name="dbpulse_async") as cur:
                await cur.execute("SELECT x FROM t ORDER BY x")
                listed = await cur.fetchall()
            with pytest.raises(psycopg.errors.SyntaxError) as caught:
                await conn.execute("SELEC 1")
            return many, listed, str(caught.value)

    return asyncio.run(run())


@pg()
def s_truthless_rows_in_executemany(ctx: Ctx) -> Any:
    with _connect(ctx) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO t (x) VALUES (%s)", Truthless([Truthless(["a"]), ("b",)]))
        return cur.rowcount, conn.execute("SELECT x FROM t ORDER BY x").fetchall()


@pg()
def s_executemany_generator_raises(ctx: Ctx) -> Any:
    def rows() -> Any:
        yield ("a",)
        raise LookupError("the source ran dry")

    with _connect(ctx) as conn, conn.cursor() as cur:
        with pytest.raises(LookupError) as caught:
            cur.executemany("INSERT INTO t (x) VALUES (%s)", rows())
        return str(caught.value), conn.execute("SELECT x FROM t").fetchall()


@pg(observed=False)
def s_execute_without_query(ctx: Ctx) -> Any:
    with _connect(ctx) as conn:
        conn.cursor().execute()


@pg(observed=False)
def s_query_of_wrong_type(ctx: Ctx) -> Any:
    with _connect(ctx) as conn:
        conn.execute(42)


@pg()
def s_client_and_raw_cursors(ctx: Ctx) -> Any:
    with _connect(ctx) as conn:
        client = psycopg.ClientCursor(conn)
        client.execute("SELECT %s, %s", ("it's", 2))
        raw = psycopg.RawCursor(conn)
        raw.execute("SELECT $1::int * 2", (21,))
        return client.fetchall(), client.mogrify("SELECT %s", ("x",)), raw.fetchall()


@pg()
def s_server_cursor_executemany_refused(ctx: Ctx) -> Any:
    with _connect(ctx) as conn, conn.cursor(name="dbpulse_many") as cur:
        cur.executemany("INSERT INTO t (x) VALUES (%s)", [("a",)])


@pg()
def s_copy_with_parameters_and_read(ctx: Ctx) -> Any:
    with _connect(ctx) as conn, conn.cursor() as cur:
        with cur.copy("COPY (SELECT %s::int, %s::text) TO STDOUT", (7, "seven")) as copy:
            data = b"".join(bytes(chunk) for chunk in copy)
        return data, cur.rowcount


@pg()
def s_force_rollback_transaction(ctx: Ctx) -> Any:
    with _connect(ctx, autocommit=True) as conn:
        with conn.transaction(force_rollback=True):
            conn.execute("INSERT INTO t (x) VALUES ('a')")
        return conn.execute("SELECT count(*) FROM t").fetchall()


@pg()
def s_cursor_factory_and_row_factory_on_connect(ctx: Ctx) -> Any:
    conn = psycopg.connect(ctx.dsn, cursor_factory=psycopg.ClientCursor, row_factory=rows.dict_row)
    with conn:
        cur = conn.execute("SELECT 1 AS one")
        return type(cur).__name__, cur.fetchall()


@pg()
def s_async_errors_and_rollback(ctx: Ctx) -> Any:
    async def run() -> Any:
        async with await psycopg.AsyncConnection.connect(ctx.dsn) as conn:
            await conn.execute("CREATE TEMP TABLE t (x text UNIQUE)")
            await conn.commit()

            def gen() -> Any:
                yield ("a",)
                yield ("a",)

            with pytest.raises(psycopg.errors.UniqueViolation) as caught:
                async with conn.cursor() as cur:
                    await cur.executemany("INSERT INTO t VALUES (%s)", gen())
            await conn.rollback()
            with pytest.raises(ZeroDivisionError):
                async with conn.transaction():
                    await conn.execute("INSERT INTO t VALUES ('b')")
                    1 / 0  # noqa: B018
            cur = await conn.execute("SELECT count(*) FROM t")
            return caught.value.sqlstate, await cur.fetchall()

    return asyncio.run(run())


def _results(cur: Any) -> list[Any]:
    """Every result set of the cursor: (rowcount, statusmessage, rows or None)."""
    found = []
    while True:
        rows = cur.fetchall() if cur.description else None
        found.append((cur.rowcount, cur.statusmessage, rows))
        if not cur.nextset():
            return found


@pg()
def s_several_statements_and_their_results(ctx: Ctx) -> Any:
    with _connect(ctx) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO t (x) VALUES ('a'), ('b'); UPDATE t SET n = 1; SELECT x FROM t ORDER BY x;"
            " WITH gone AS (DELETE FROM t WHERE x = 'a' RETURNING 1) SELECT count(*) FROM gone"
        )
        return _results(cur)


@pg()
def s_executemany_returning_results(ctx: Ctx) -> Any:
    with _connect(ctx) as conn, conn.cursor() as cur:
        rows = [("a",), ("b",), ("c",)]
        cur.executemany("INSERT INTO t (x) VALUES (%s) RETURNING id, x", rows, returning=True)
        first = _results(cur)
        cur.executemany("UPDATE t SET n = %s RETURNING x", [(1,), (2,)], returning=True)
        return first, _results(cur)


@pg()
def s_executemany_failing_midway(ctx: Ctx) -> Any:
    with _connect(ctx, autocommit=True) as conn, conn.cursor() as cur:
        with pytest.raises(psycopg.errors.UniqueViolation) as caught:
            cur.executemany("INSERT INTO t (x) VALUES (%s)", [("a",), ("b",), ("a",), ("c",)])
        after = cur.rowcount, cur.statusmessage, conn.execute("SELECT count(*) FROM t").fetchall()
        with pytest.raises(psycopg.errors.UniqueViolation):
            cur.executemany(
                "INSERT INTO t (x) VALUES (%s) RETURNING x", [("d",), ("d",)], returning=True
            )
        return str(caught.value), after, cur.rowcount, cur.statusmessage


@pg()
def s_pipeline_with_a_failing_statement(ctx: Ctx) -> Any:
    with _connect(ctx) as conn:
        conn.commit()
        cur = conn.cursor()
        with pytest.raises(psycopg.errors.UniqueViolation) as caught, conn.pipeline():
            cur.execute("INSERT INTO t (x) VALUES ('a') RETURNING id")
            conn.execute("INSERT INTO t (x) VALUES ('a')")
            conn.execute("UPDATE t SET n = 1")
        state = cur.rowcount, cur.statusmessage, cur.fetchall(), conn.info.transaction_status.name
        conn.rollback()
        return str(caught.value), state, conn.execute("SELECT count(*) FROM t").fetchall()


@pg()
def s_pipeline_one_cursor_batches_and_syncs(ctx: Ctx) -> Any:
    with _connect(ctx) as conn:
        cur = conn.cursor()
        with conn.pipeline() as pipeline:
            cur.execute("INSERT INTO t (x) VALUES ('a'), ('b')")
            cur.executemany("INSERT INTO t (x) VALUES (%s)", [("c",), ("d",)])
            after_batch = cur.rowcount
            cur.execute("UPDATE t SET n = 2 RETURNING x")
            pipeline.sync()
            updated = cur.rowcount, cur.statusmessage, sorted(cur.fetchall())
            cur.execute("DELETE FROM t WHERE x = 'a'")
        return after_batch, updated, cur.rowcount, cur.statusmessage


@pg()
def s_async_pipeline_and_failing_batch(ctx: Ctx) -> Any:
    async def run() -> Any:
        async with await psycopg.AsyncConnection.connect(ctx.dsn) as conn:
            await conn.execute("CREATE TEMP TABLE t (x text UNIQUE)")
            cur = conn.cursor()
            async with conn.pipeline():
                await cur.execute("INSERT INTO t VALUES ('a'), ('b') RETURNING x")
                await conn.execute("UPDATE t SET x = x || '!'")
            piped = cur.rowcount, cur.statusmessage, await cur.fetchall()
            with pytest.raises(psycopg.errors.UniqueViolation) as caught:
                await cur.executemany(
                    "INSERT INTO t VALUES (%s) RETURNING x", [("c",), ("c",)], returning=True
                )
            return piped, str(caught.value), cur.rowcount

    return asyncio.run(run())
