"""Datasette serving a SQLite file over HTTP (uvicorn), read by several client threads."""

import socket
import sqlite3
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import _truth
import httpx
import uvicorn
from datasette.app import Datasette

path = sys.argv[1]
setup = _truth.STATEMENTS.watch(sqlite3.connect(path), "books")
setup.execute("CREATE TABLE books (isbn TEXT PRIMARY KEY, title TEXT, year INTEGER)")
setup.executemany(
    "INSERT INTO books VALUES (?, ?, ?)",
    [(f"978030640{i:04d}", f"Book {i}", 1990 + i % 7) for i in range(30)],
)
setup.commit()
setup_changes = setup.total_changes

ds = Datasette(
    [path],
    plugins_dir=str(Path(__file__).parent / "datasette_plugins"),
    settings={"num_sql_threads": 3},
)
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
port = sock.getsockname()[1]
server = uvicorn.Server(uvicorn.Config(ds.app(), log_level="warning", lifespan="on"))
thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
thread.start()
while not server.started:
    time.sleep(0.02)

base = f"http://127.0.0.1:{port}"
pages = [
    "/books/books.json?_shape=array&_size=5&_sort=isbn",
    "/books/books.json?_shape=array&year=1992&_sort=isbn",
    "/books/books/9780306400003.json?_shape=array",
    "/books.json?sql=select+year,count(*)+from+books+group+by+year&_shape=array",
] * 6


def get(page):
    with httpx.Client(base_url=base) as client:
        response = client.get(page)
        return response.status_code, response.text


with ThreadPoolExecutor(4) as pool:
    for status, body in pool.map(get, pages):
        print(status, body[:120])
server.should_exit = True
thread.join(10)
_truth.report(
    setup_changes=setup_changes,
    batches=[30],  # the setup's executemany
    varies={
        "changes": _truth.STATEMENTS.total_changes(),
        # What ran on books.db: the setup's connection and datasette's own ("books").
        "statements": _truth.STATEMENTS.labelled["books"],
    },
)
