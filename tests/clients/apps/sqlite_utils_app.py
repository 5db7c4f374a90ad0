"""sqlite-utils as a user writes it: insert, upsert, query, delete on a file database."""

import sqlite3
import sys

import sqlite_utils
from _truth import Statements, report

statements = Statements()
conn = statements.watch(sqlite3.connect(sys.argv[1]))
db = sqlite_utils.Database(conn)
books = db["books"]
books.insert_all(
    [{"isbn": f"97803064061{i:02d}", "title": f"Book {i}", "copies": i} for i in range(20)],
    pk="isbn",
    batch_size=7,
)
books.insert({"isbn": "9780306406157", "title": "Numbers", "copies": 1})
books.upsert_all(
    [{"isbn": f"97803064061{i:02d}", "copies": 100 + i} for i in range(15, 25)],
    pk="isbn",
)
books.upsert({"isbn": "9780306406157", "copies": 2}, pk="isbn")
print(list(db.query("SELECT isbn, copies FROM books WHERE copies > ? ORDER BY isbn", [110])))
print(list(db.query("UPDATE books SET copies = copies + 1 WHERE copies < 3 RETURNING isbn")))
books.delete_where("copies < ?", [5])
print(books.count, db.table_names())
db.executescript("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('a'), ('b');")
print(db.execute("SELECT count(*) FROM notes").fetchone())
report(changes=conn.total_changes, statements=statements.counts)
