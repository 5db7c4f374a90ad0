"""sqlite-utils: insert, upsert, query (``RETURNING`` too), delete and a script, counted as
SQLite itself counts them (``total_changes``, the trace callback)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tests.clients._sink import OtlpSink
from tests.clients.conftest import operations, run_both, writes


def test_sqlite_utils_counts_are_sqlites_own(sink: OtlpSink, tmp_path: Path):
    run = run_both(sink, tmp_path, "sqlite_utils_app.py", ["books.db"])
    assert "20 ['books']" in run.stdout  # what the app did, identical with dbpulse on
    assert writes(sink, "sqlite") == run.truth["changes"] == 46
    # One operation per statement SQLite ran (sqlite-utils runs its BEGIN/COMMIT itself), the
    # script (CREATE + INSERT) being one BATCH operation.
    expected = Counter(run.truth["statements"])
    expected.subtract({"CREATE": 1, "INSERT": 1})
    expected["BATCH"] += 1
    assert operations(sink, "sqlite") == dict(+expected)
