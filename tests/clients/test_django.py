"""Django on SQLite: ``migrate`` (contenttypes, auth, an app of ours) and the ORM: create,
bulk create (``INSERT ... RETURNING``), update, cascading delete, a rolled-back atomic block."""

from __future__ import annotations

from pathlib import Path

from tests.clients._sink import OtlpSink
from tests.clients.conftest import expected_operations, operations, run_both, writes

APP_OUTPUT = """created 1
updated 6
deleted (4, {'library.Review': 3, 'library.Book': 1})
books []
reviews 0
permissions 24
"""


def test_django_migrate_and_orm_on_sqlite(sink: OtlpSink, tmp_path: Path):
    run = run_both(sink, tmp_path, "django_app.py", ["library.db"])
    assert run.stdout.startswith(APP_OUTPUT)
    # Every row Django wrote, its RETURNING inserts and the rolled-back one included.
    assert writes(sink, "sqlite") == run.truth["changes"] == 71
    # Django runs BEGIN through the cursor, COMMIT and ROLLBACK through the driver.
    skip = frozenset({"COMMIT", "ROLLBACK"})
    expected = expected_operations(run.truth["statements"], run.truth["batches"], skip)
    assert operations(sink, "sqlite") == expected
