"""What the driver itself says an application did: shared by the applications under test.

``Statements`` is a sqlite3 trace callback (the statements the SQLite library ran, by first
keyword); ``report`` prints the truth as the application's last lines, so a plain and an
instrumented run must agree on it too (but for what is marked as varying from run to run).
"""

import json
import threading
from collections import Counter


class Statements:
    """``watch(connection)``: counts what SQLite runs on it, by keyword (and by ``label``)."""

    def __init__(self):
        self.counts = Counter()
        self.labelled = {}
        self.connections = []
        self._lock = threading.Lock()

    def _counter(self, counts):
        def trace(sql):
            words = sql.split(None, 1)
            if not words or words[0].startswith("--"):  # "-- TRIGGER name": not a statement
                return
            with self._lock:
                self.counts[words[0].upper()] += 1
                counts[words[0].upper()] += 1

        return trace

    def watch(self, connection, label=""):
        with self._lock:
            counts = self.labelled.setdefault(label, Counter())
            self.connections.append(connection)
        connection.set_trace_callback(self._counter(counts))
        return connection

    def total_changes(self):
        """Rows changed on every watched connection still open (read before they close)."""
        return sum(c.total_changes for c in self.connections)


STATEMENTS = Statements()
"""One process-wide instance, for hooks that can't be handed one (datasette's plugins)."""


def report(varies=None, **truth):
    """Print the truth: ``truth`` must be the same in every run; ``varies`` is this run's own
    (statements a multi-threaded server ran, which depend on timing)."""
    print("TRUTH " + json.dumps(truth, sort_keys=True))
    if varies is not None:
        print("RUN TRUTH " + json.dumps(varies, sort_keys=True))
    print("app done")
