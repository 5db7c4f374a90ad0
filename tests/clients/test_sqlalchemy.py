"""SQLAlchemy 2 ORM on SQLite and PostgreSQL: string and autoincrement keys (``INSERT ...
RETURNING``), updates, deletes and a rolled-back flush, counted as the database counts them."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tests.clients._servers import PrivatePostgres
from tests.clients._sink import OtlpSink
from tests.clients.conftest import (
    DRIVER_TRANSACTIONS,
    expected_operations,
    operations,
    run_both,
    writes,
)

APP_OUTPUT = """loan ids [1, 2, 3, 4, 5, 6, 7, 8]
books [('9780306400000', 2), ('9780306400001', 2), ('9780306400002', 2), ('9780306400003', 2), \
('9780306400004', 2), ('9780306400005', 2)]
titles ['Book 0', 'Renamed', 'Book 2', 'Book 3', 'Book 4', 'Book 5']
loans 8
""".replace("\\\n", "")


def test_sqlalchemy_orm_on_sqlite(sink: OtlpSink, tmp_path: Path):
    run = run_both(sink, tmp_path, "sqlalchemy_app.py", ["sqlite:///books.db"])
    assert run.stdout.startswith(APP_OUTPUT)
    # Rolled-back rows were written all the same: SQLite counts them, so does dbpulse.
    assert writes(sink, "sqlite") == run.truth["changes"] == 32
    expected = expected_operations(
        run.truth["statements"], run.truth["batches"], DRIVER_TRANSACTIONS
    )
    assert operations(sink, "sqlite") == expected


def test_sqlalchemy_orm_on_postgresql(sink: OtlpSink, private_pg: PrivatePostgres, tmp_path: Path):
    for name in ("sa_plain", "sa_instrumented"):
        private_pg.create_database(name)

    def url(instrumented: bool) -> list[str]:
        dsn = private_pg.dsn("sa_instrumented" if instrumented else "sa_plain")
        return [dsn.replace("postgresql://", "postgresql+psycopg://")]

    run = run_both(sink, tmp_path, "sqlalchemy_app.py", url)
    assert run.stdout.startswith(APP_OUTPUT)
    stats = private_pg.stats("sa_instrumented")
    assert sorted(stats) != [] and sorted(private_pg.stats("sa_plain")) != []
    server_writes = sum(
        rows
        for query, _, rows in stats
        if query.split()[0].upper() in {"INSERT", "UPDATE", "DELETE"}
    )
    assert writes(sink, "postgresql") == server_writes == 32
    statements: Counter[str] = Counter()
    for query, calls, _ in stats:
        statements[query.split()[0].upper()] += calls
    expected = expected_operations(statements, run.truth["batches"], DRIVER_TRANSACTIONS)
    assert operations(sink, "postgresql") == expected
