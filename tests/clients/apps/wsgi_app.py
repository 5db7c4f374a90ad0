"""A WSGI application for gunicorn ``--preload``: the schema and seed rows are written at import
(in the master, before the workers fork); each request writes with its own connection.

    APP_DB=books.db gunicorn --preload -w 3 wsgi_app:app
"""

import os
import sqlite3
from urllib.parse import parse_qs

PATH = os.environ["APP_DB"]

with sqlite3.connect(PATH) as seed:
    seed.execute("CREATE TABLE IF NOT EXISTS books (isbn TEXT, worker INTEGER)")
    for i in range(5):
        seed.execute("INSERT INTO books VALUES (?, ?)", (f"978030640{i:04d}", os.getpid()))
seed.close()


def app(environ, start_response):
    query = parse_qs(environ.get("QUERY_STRING", ""))
    conn = sqlite3.connect(PATH, timeout=30)
    try:
        if environ["PATH_INFO"] == "/write":
            rows = int(query["n"][0])
            with conn:
                for i in range(rows):
                    conn.execute(
                        "INSERT INTO books VALUES (?, ?)", (f"97801404{i:05d}", os.getpid())
                    )
            body = f"wrote {rows} changes {conn.total_changes}"
        else:
            body = f"count {conn.execute('SELECT count(*) FROM books').fetchone()[0]}"
    finally:
        conn.close()
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Worker", str(os.getpid()))])
    return [body.encode()]
