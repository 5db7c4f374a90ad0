"""What the driver itself says an application did: shared by the applications under test.

``Statements`` is a sqlite3 trace callback (the statements the SQLite library ran, by first
keyword); ``report`` prints the truth as the application's last lines, so a plain and an
instrumented run must agree on it too.
"""

import json
import threading
from collections import Counter


class Statements:
    """``connection.set_trace_callback(statements)``: counts what SQLite runs, by keyword."""

    def __init__(self):
        self.counts = Counter()
        self.connections = []
        self._lock = threading.Lock()

    def __call__(self, sql):
        words = sql.split(None, 1)
        if not words or words[0].startswith("--"):  # "-- TRIGGER name": not a statement
            return
        with self._lock:
            self.counts[words[0].upper()] += 1

    def watch(self, connection):
        connection.set_trace_callback(self)
        with self._lock:
            self.connections.append(connection)
        return connection

    def total_changes(self):
        """Rows changed on every watched connection still open (read before they close)."""
        return sum(c.total_changes for c in self.connections)


def report(**truth):
    print("TRUTH " + json.dumps(truth, sort_keys=True))
    print("app done")
