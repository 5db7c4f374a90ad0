"""SQL parsing: the span names and attributes a user sees for real statement shapes."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbpulse.core.sql import (
    MAX_NAME_CHARS,
    MAX_SUMMARY_CHARS,
    MAX_TEXT_CHARS,
    SqlInfo,
    parse_sql,
)
from dbpulse.core.sql import _parse as parse_without_safety_net

# (sql, operation, collection, summary, is_write)
CORPUS: list[tuple[str, str, str | None, str, bool]] = [
    # SQLite and PostgreSQL inserts and upserts
    ("INSERT INTO books (isbn, title) VALUES (?, ?)", "INSERT", "books", "INSERT books", True),
    ("insert into books values (?, ?)", "INSERT", "books", "INSERT books", True),
    ("INSERT OR REPLACE INTO books (isbn) VALUES (?)", "INSERT", "books", "INSERT books", True),
    (
        "INSERT OR IGNORE INTO main.books (isbn) VALUES (:isbn)",
        "INSERT",
        "main.books",
        "INSERT main.books",
        True,
    ),
    ("REPLACE INTO books (isbn, title) VALUES (?, ?)", "REPLACE", "books", "REPLACE books", True),
    (
        "INSERT INTO books (isbn) VALUES (%s) ON CONFLICT (isbn) DO UPDATE SET title = "
        "excluded.title RETURNING id",
        "INSERT",
        "books",
        "INSERT books",
        True,
    ),
    (
        "INSERT INTO books (isbn) VALUES ($1) ON CONFLICT DO NOTHING",
        "INSERT",
        "books",
        "INSERT books",
        True,
    ),
    (
        "INSERT INTO books (a, b) VALUES (1, 'x'), (2, 'y'), (3, 'z')",
        "INSERT",
        "books",
        "INSERT books",
        True,
    ),
    (
        "INSERT INTO shipping_details (order_id, address) SELECT order_id, address FROM orders "
        "WHERE order_id = ?",
        "INSERT",
        "shipping_details",
        "INSERT shipping_details SELECT orders",
        True,
    ),
    ("INSERT INTO books DEFAULT VALUES", "INSERT", "books", "INSERT books", True),
    # updates and deletes
    ("UPDATE books SET title = ? WHERE isbn = ?", "UPDATE", "books", "UPDATE books", True),
    ("UPDATE OR REPLACE books SET title = ?", "UPDATE", "books", "UPDATE books", True),
    (
        "UPDATE ONLY public.books b SET price = s.price FROM staging s, rates r WHERE b.id = s.id",
        "UPDATE",
        "public.books",
        "UPDATE public.books staging rates",
        True,
    ),
    ("DELETE FROM books WHERE isbn = ?", "DELETE", "books", "DELETE books", True),
    (
        "DELETE FROM books b USING authors a WHERE b.author_id = a.id AND a.name = %(name)s",
        "DELETE",
        "books",
        "DELETE books authors",
        True,
    ),
    # selects: joins, subqueries, CTEs
    (
        "SELECT * FROM wuser_table WHERE username = ?",
        "SELECT",
        "wuser_table",
        "SELECT wuser_table",
        False,
    ),
    (
        "SELECT * FROM songs, artists WHERE songs.artist_id == artists.id",
        "SELECT",
        "songs",
        "SELECT songs artists",
        False,
    ),
    (
        "SELECT b.title, a.name FROM books AS b LEFT OUTER JOIN authors a ON a.id = b.author_id "
        "WHERE b.isbn = ?",
        "SELECT",
        "books",
        "SELECT books authors",
        False,
    ),
    (
        "SELECT order_date FROM (SELECT * FROM orders o JOIN customers c ON o.customer_id = "
        "c.customer_id)",
        "SELECT",
        "orders",
        "SELECT SELECT orders customers",
        False,
    ),
    (
        "SELECT * FROM books WHERE author_id IN (SELECT id FROM authors WHERE name = ?)",
        "SELECT",
        "books",
        "SELECT books SELECT authors",
        False,
    ),
    (
        "SELECT (SELECT count(*) FROM loans l WHERE l.book_id = b.id) AS n FROM books b",
        "SELECT",
        "books",
        "SELECT SELECT loans books",
        False,
    ),
    (
        "WITH recent AS (SELECT * FROM orders WHERE day > ?) SELECT * FROM recent JOIN users u "
        "ON u.id = recent.user_id",
        "SELECT",
        "users",
        "SELECT orders SELECT users",
        False,
    ),
    (
        "WITH x AS (SELECT isbn FROM staging) INSERT INTO books (isbn) SELECT isbn FROM x",
        "INSERT",
        "books",
        "SELECT staging INSERT books SELECT",
        True,
    ),
    (
        "WITH gone AS (DELETE FROM books WHERE year < ? RETURNING *) SELECT count(*) FROM gone",
        "SELECT",
        "books",
        "DELETE books SELECT",
        True,
    ),
    (
        "SELECT EXTRACT(YEAR FROM created_at), TRIM(BOTH ' ' FROM name), SUBSTRING(x FROM 2) "
        "FROM orders",
        "SELECT",
        "orders",
        "SELECT orders",
        False,
    ),
    (
        "SELECT * FROM generate_series(1, 10) g JOIN books b ON b.id = g",
        "SELECT",
        "books",
        "SELECT books",
        False,
    ),
    (
        "SELECT * FROM jobs WHERE id = $1 FOR UPDATE SKIP LOCKED",
        "SELECT",
        "jobs",
        "SELECT jobs",
        False,
    ),
    (
        "(SELECT a FROM t1) UNION ALL (SELECT a FROM t2)",
        "SELECT",
        "t1",
        "SELECT t1 SELECT t2",
        False,
    ),
    ("SELECT 1", "SELECT", None, "SELECT", False),
    ("SELECT from_date, into_account FROM ledger", "SELECT", "ledger", "SELECT ledger", False),
    # quoted identifiers and schema-qualified names
    ('SELECT * FROM "books" WHERE "isbn" = ?', "SELECT", "books", "SELECT books", False),
    ('SELECT * FROM "public"."Books"', "SELECT", "public.Books", "SELECT public.Books", False),
    ("SELECT * FROM `books`", "SELECT", "books", "SELECT books", False),
    ("SELECT [title] FROM [main].[books]", "SELECT", "main.books", "SELECT main.books", False),
    (
        'SELECT * FROM "song list", artists',
        "SELECT",
        "song list",
        'SELECT "song list" artists',
        False,
    ),
    ('INSERT INTO "we""ird" VALUES (1)', "INSERT", 'we"ird', 'INSERT "we""ird"', True),
    # COPY
    ("COPY books (isbn, title) FROM STDIN", "COPY", "books", "COPY books", True),
    (
        "COPY public.books FROM STDIN WITH (FORMAT csv)",
        "COPY",
        "public.books",
        "COPY public.books",
        True,
    ),
    ("COPY books TO STDOUT", "COPY", "books", "COPY books", False),
    (
        "COPY (SELECT * FROM books WHERE year > 2000) TO STDOUT WITH CSV",
        "COPY",
        "books",
        "COPY SELECT books",
        False,
    ),
    # DDL
    (
        "CREATE TABLE IF NOT EXISTS books (id INTEGER PRIMARY KEY, author_id INT REFERENCES "
        "authors(id) ON DELETE CASCADE)",
        "CREATE",
        "books",
        "CREATE TABLE books",
        False,
    ),
    ("create temp table scratch (a text)", "CREATE", "scratch", "CREATE TABLE scratch", False),
    (
        "CREATE UNIQUE INDEX IF NOT EXISTS idx_isbn ON books (isbn)",
        "CREATE",
        "books",
        "CREATE INDEX idx_isbn",
        False,
    ),
    (
        "CREATE INDEX CONCURRENTLY idx ON public.books USING btree (isbn)",
        "CREATE",
        "public.books",
        "CREATE INDEX idx",
        False,
    ),
    (
        "CREATE VIEW recent AS SELECT * FROM books WHERE year > 2020",
        "CREATE",
        "recent",
        "CREATE VIEW recent SELECT books",
        False,
    ),
    (
        "CREATE TABLE archive AS SELECT * FROM books",
        "CREATE",
        "archive",
        "CREATE TABLE archive SELECT books",
        False,
    ),
    ("DROP TABLE IF EXISTS books", "DROP", "books", "DROP TABLE books", False),
    (
        "ALTER TABLE books ADD COLUMN price REAL DEFAULT 0",
        "ALTER",
        "books",
        "ALTER TABLE books",
        False,
    ),
    ("TRUNCATE TABLE books", "TRUNCATE", "books", "TRUNCATE TABLE books", False),
    ("TRUNCATE books, authors", "TRUNCATE", "books", "TRUNCATE books", False),
    ("DROP USER bob", "DROP", None, "DROP USER", False),
    (
        "CREATE TRIGGER log_insert AFTER INSERT ON books BEGIN INSERT INTO log VALUES (new.id); "
        "UPDATE counts SET n = n + 1; END",
        "CREATE",
        "books",
        "CREATE TRIGGER log_insert INSERT log UPDATE counts",
        False,
    ),
    # transaction control
    ("BEGIN", "BEGIN", None, "BEGIN", False),
    ("BEGIN IMMEDIATE TRANSACTION", "BEGIN", None, "BEGIN", False),
    ("COMMIT", "COMMIT", None, "COMMIT", False),
    ("ROLLBACK TO SAVEPOINT s1_x42", "ROLLBACK", None, "ROLLBACK", False),
    ("SAVEPOINT s1_x42", "SAVEPOINT", None, "SAVEPOINT", False),
    ("RELEASE SAVEPOINT s1_x42", "RELEASE", None, "RELEASE", False),
    # SQLite and PostgreSQL commands
    ("PRAGMA journal_mode = WAL", "PRAGMA", None, "PRAGMA journal_mode", False),
    ("PRAGMA main.table_info(books)", "PRAGMA", None, "PRAGMA main.table_info", False),
    ("VACUUM", "VACUUM", None, "VACUUM", False),
    (
        "EXPLAIN QUERY PLAN SELECT * FROM books WHERE isbn = ?",
        "EXPLAIN",
        "books",
        "EXPLAIN SELECT books",
        False,
    ),
    ("CALL refresh_totals(?)", "CALL", None, "CALL refresh_totals", False),
    ("SET search_path TO public", "SET", None, "SET", False),
    # comments before the keyword
    ("-- load fixtures\nINSERT INTO books VALUES (?)", "INSERT", "books", "INSERT books", True),
    ("/* app: api, route: /books */ SELECT * FROM books", "SELECT", "books", "SELECT books", False),
    (
        "/* outer /* nested */ still comment */ DELETE FROM books",
        "DELETE",
        "books",
        "DELETE books",
        True,
    ),
    ("SELECT id -- FROM secret\nFROM books", "SELECT", "books", "SELECT books", False),
    # literals that look like SQL never become structure
    (
        "SELECT 'select * from secret; DROP TABLE x' FROM books",
        "SELECT",
        "books",
        "SELECT books",
        False,
    ),
    (
        "INSERT INTO notes (body) VALUES ('a; DROP TABLE x')",
        "INSERT",
        "notes",
        "INSERT notes",
        True,
    ),
    (
        "INSERT INTO notes (body) VALUES ('it''s; from secret')",
        "INSERT",
        "notes",
        "INSERT notes",
        True,
    ),
    (
        "SELECT $$ from secret; $$, $tag$ it's; $x$ $tag$ FROM books",
        "SELECT",
        "books",
        "SELECT books",
        False,
    ),
    ("SELECT E'it\\'s; from secret' FROM books", "SELECT", "books", "SELECT books", False),
    # nothing to name
    ("", "", None, "", False),
    ("   \n\t ", "", None, "", False),
    ("-- only a comment", "", None, "", False),
    ("hello world", "", None, "", False),
]


@pytest.mark.parametrize(("sql", "operation", "collection", "summary", "is_write"), CORPUS)
def test_statement_shapes(
    sql: str, operation: str, collection: str | None, summary: str, is_write: bool
) -> None:
    info = parse_sql(sql)
    assert (info.operation, info.collection, info.summary, info.is_write) == (
        operation,
        collection,
        summary,
        is_write,
    )


# (sql, sanitized)
SANITIZED: list[tuple[str, str]] = [
    (
        "INSERT INTO books(isbn, title)\n  VALUES ('9780140449136', 'Odyssey')",
        "INSERT INTO books(isbn, title) VALUES (?, ?)",
    ),
    (
        "SELECT * FROM t WHERE a = 42 AND b = -3.5e10 AND c = 0x1F AND d = .5",
        "SELECT * FROM t WHERE a = ? AND b = -? AND c = ? AND d = ?",
    ),
    ("SELECT X'DEADBEEF', x'00', B'0101', N'naïve', E'a\\'b'", "SELECT ?, ?, ?, ?, ?"),
    (
        "SELECT * FROM t WHERE flag = TRUE OR other = false OR x IS NULL",
        "SELECT * FROM t WHERE flag = ? OR other = ? OR x IS NULL",
    ),
    ("SELECT $body$ secret $body$, $$x$$", "SELECT ?, ?"),
    ("SELECT * FROM t WHERE id IN (1, 2, 3)", "SELECT * FROM t WHERE id IN (?)"),
    ("SELECT * FROM t WHERE id IN (?, ?, ?)", "SELECT * FROM t WHERE id IN (?)"),
    ("SELECT * FROM t WHERE id IN ($1, $2)", "SELECT * FROM t WHERE id IN ($1, $2)"),
    (
        "INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'), (3, 'z')",
        "INSERT INTO t (a, b) VALUES (?, ?), ...",
    ),
    ("INSERT INTO t (a, b) VALUES (?, ?), (?, ?)", "INSERT INTO t (a, b) VALUES (?, ?), ..."),
    ("INSERT INTO t (a) VALUES (1), (now())", "INSERT INTO t (a) VALUES (?), (now())"),
    ("SELECT a /* comment */ FROM t -- trailing\n", "SELECT a FROM t"),
    ("SELECT a/**/FROM t", "SELECT a FROM t"),
    (
        "SELECT x::int, y FROM t WHERE z = :name AND w = @p AND v = $v",
        "SELECT x::int, y FROM t WHERE z = :name AND w = @p AND v = $v",
    ),
    (
        "SELECT * FROM t WHERE a = ? AND b = ?1 AND c = %s AND d = %(d)s AND e = $2",
        "SELECT * FROM t WHERE a = ? AND b = ?1 AND c = %s AND d = %(d)s AND e = $2",
    ),
    ("SELECT arr[1], data['key'] FROM t", "SELECT arr[?], data[?] FROM t"),
    ("SELECT 'unterminated; DROP TABLE x", "SELECT ?"),
    ("SELECT 1; SELECT 2;", "SELECT ?; SELECT ?"),
    ("SELECT t1.c2 FROM t1", "SELECT t1.c2 FROM t1"),
]


@pytest.mark.parametrize(("sql", "sanitized"), SANITIZED)
def test_sanitized_text(sql: str, sanitized: str) -> None:
    assert parse_sql(sql).sanitized == sanitized


SECRETS = ["hunter2-S3cret!", "alice.smith@example.com", "4111111111111111", "DEADBEEFCAFE"]


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE users SET password = 'hunter2-S3cret!' WHERE email = 'alice.smith@example.com'",
        "INSERT INTO users (email, pw) VALUES ('alice.smith@example.com', 'hunter2-S3cret!')",
        "SELECT * FROM cards WHERE number = 4111111111111111 AND key = X'DEADBEEFCAFE'",
        "SELECT * FROM users WHERE email = E'alice.smith@example.com' AND pw = $$hunter2-S3cret!$$",
        "SELECT * FROM users WHERE email IN ('alice.smith@example.com', 'hunter2-S3cret!')",
        "SELECT 1 /* alice.smith@example.com */ -- hunter2-S3cret!\n FROM users",
        "SELECT * FROM users WHERE pw = 'hunter2-S3cret!",  # unterminated
        "BEGIN; UPDATE users SET pw = 'hunter2-S3cret!'; COMMIT;",
    ],
)
def test_no_literal_value_leaks(sql: str) -> None:
    info = parse_sql(sql)
    exported = f"{info.sanitized} {info.summary} {info.collection} {info.operation}"
    for secret in SECRETS:
        assert secret not in exported


def test_scripts_are_batches() -> None:
    info = parse_sql("INSERT INTO a VALUES (1); INSERT INTO a VALUES (2);")
    assert (info.operation, info.collection, info.summary, info.statements) == (
        "BATCH INSERT",
        "a",
        "BATCH INSERT a",
        2,
    )
    assert info.sanitized == "INSERT INTO a VALUES (?); INSERT INTO a VALUES (?)"

    # The conventions keep a collection that every operation of the batch shares.
    other = parse_sql("INSERT INTO a VALUES (1); INSERT INTO b VALUES (2)")
    assert (other.operation, other.collection, other.summary) == ("BATCH INSERT", None, "BATCH")

    mixed = parse_sql("CREATE TABLE a (x); INSERT INTO a VALUES (1); SELECT * FROM a")
    assert (mixed.operation, mixed.collection, mixed.summary, mixed.statements) == (
        "BATCH",
        "a",
        "BATCH",
        3,
    )
    assert mixed.is_write

    framed = parse_sql("BEGIN;\nINSERT INTO a VALUES (1);\nINSERT INTO a VALUES (2);\nCOMMIT;")
    assert (framed.operation, framed.collection, framed.statements) == ("BATCH INSERT", "a", 4)

    tx_only = parse_sql("BEGIN; COMMIT")
    assert (tx_only.operation, tx_only.summary, tx_only.is_write) == ("BATCH", "BATCH", False)


@pytest.mark.parametrize(
    ("sql", "statements"),
    [
        ("SELECT 1", 1),
        ("SELECT 1;", 1),
        ("SELECT 1; SELECT 2", 2),
        ("a; b;", 2),
        (";;SELECT 1;;", 1),
        ("SELECT 'a;b'; SELECT \"c;d\"; -- ; \n SELECT $$;$$", 3),
        (
            "CREATE TRIGGER t AFTER INSERT ON b BEGIN SELECT CASE WHEN 1 THEN 2 END; "
            "DELETE FROM c; END; SELECT 1",
            2,
        ),
        ("", 0),
        ("-- nothing\n/* here */;", 0),
    ],
)
def test_statement_count(sql: str, statements: int) -> None:
    assert parse_sql(sql).statements == statements


def test_long_summary_is_cut_between_names() -> None:
    tables = [f"table_{i:03d}" for i in range(60)]
    summary = parse_sql("SELECT * FROM " + ", ".join(tables)).summary
    assert len(summary) <= MAX_SUMMARY_CHARS
    assert summary.startswith("SELECT table_000 table_001")
    assert re.search(r" table_\d{3}$", summary)


def test_huge_statement_is_bounded() -> None:
    rows = ", ".join(["(1, 'from x', 'it''s into y')"] * 2_000)  # 60 KB
    info = parse_sql("INSERT INTO events (a, b, c) VALUES " + rows)
    assert (info.operation, info.collection, info.summary) == ("INSERT", "events", "INSERT events")
    assert info.sanitized == "INSERT INTO events (a, b, c) VALUES (?, ?, ?), ..."

    cut = parse_sql("INSERT INTO events (a, b, c) VALUES " + rows * 10)  # cut at 64 KiB
    assert (cut.operation, cut.collection, cut.summary) == ("INSERT", "events", "INSERT events")
    assert cut.sanitized.startswith("INSERT INTO events (a, b, c) VALUES (?, ?, ?), ...")

    long_in = parse_sql("SELECT * FROM t WHERE x IN (" + "?, " * 50_000 + "?)")
    assert long_in.sanitized.endswith("IN (?)") or len(long_in.sanitized) <= MAX_TEXT_CHARS

    names = parse_sql("SELECT " + ", ".join(f"col_{i}" for i in range(5000)) + " FROM t")
    assert len(names.sanitized) <= MAX_TEXT_CHARS
    assert names.collection == "t"

    huge_name = parse_sql(f"SELECT * FROM {'x' * 1000}")
    assert huge_name.collection is None
    assert huge_name.summary == "SELECT"


@pytest.mark.parametrize(
    "sql",
    [
        "\x00\x01\x02",
        "SELECT '\udcff' FROM \udcfe",
        'SELECT * FROM "unterminated',
        "SELECT * FROM [unterminated",
        "/* unterminated",
        "$$ unterminated",
        "E'unterminated \\",
        "((((((((((",
        "))))))))))",
        "SELECT * FROM t WHERE a IN (",
        "INSERT INTO t VALUES (1), (",
        "WITH",
        "WITH x AS (",
        "COPY",
        "CREATE",
        "UPDATE",
        "PRAGMA",
        "🦆 SELECT 🦆 FROM 🦆",
    ],
)
def test_garbage_is_parsed_without_the_safety_net(sql: str) -> None:
    # parse_sql turns any exception into EMPTY; the parser behind it must not need that.
    info = parse_without_safety_net(sql)
    assert isinstance(info, SqlInfo)
    for text in (info.operation, info.summary, info.sanitized, info.collection or ""):
        text.encode("utf-8")  # exportable: no lone surrogates


def _bounded(info: SqlInfo) -> None:
    assert isinstance(info, SqlInfo)
    assert len(info.summary) <= MAX_SUMMARY_CHARS
    assert len(info.sanitized) <= MAX_TEXT_CHARS
    assert info.collection is None or 0 < len(info.collection) <= MAX_NAME_CHARS
    assert len(info.operation) <= 32
    info.sanitized.encode("utf-8")
    info.summary.encode("utf-8")


SQL_PIECES = st.sampled_from(
    [
        "SELECT",
        "INSERT",
        "INTO",
        "UPDATE",
        "DELETE",
        "FROM",
        "WHERE",
        "WITH",
        "AS",
        "JOIN",
        "VALUES",
        "COPY",
        "CREATE",
        "TABLE",
        "IN",
        "(",
        ")",
        ",",
        ";",
        ".",
        "'",
        '"',
        "`",
        "[",
        "]",
        "$$",
        "$t$",
        "E'",
        "X'",
        "--",
        "\n",
        "/*",
        "*/",
        "?",
        ":n",
        "$1",
        "%s",
        "::",
        " ",
        "t",
        "1",
        "\\",
        "\x00",
        "BEGIN",
        "END",
        "CASE",
        "TRIGGER",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=2000), st.lists(SQL_PIECES, max_size=200).map(" ".join)))
def test_any_text_gives_bounded_output(sql: str) -> None:
    _bounded(parse_without_safety_net(sql))


@settings(max_examples=200, deadline=None)
@given(
    secret=st.text(
        alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=40
    ),
    before=st.lists(SQL_PIECES.filter(lambda p: p not in ("'", "E'", "X'", "\\")), max_size=8),
    after=st.lists(SQL_PIECES.filter(lambda p: p not in ("'", "E'", "X'", "\\")), max_size=8),
)
def test_string_literal_never_leaks(secret: str, before: list[str], after: list[str]) -> None:
    marked = "Zq" + secret + "qZ"
    literal = "'" + marked.replace("'", "''") + "'"
    # Surrounding tokens that open quotes or comments could swallow the literal; that is safe.
    sql = "UPDATE users SET pw = " + literal + " WHERE id = ?"
    assert marked not in parse_sql(sql).sanitized
    noisy = " ".join([*before, "SELECT", literal, *after])
    assert marked not in parse_sql(noisy).sanitized


def test_big_input_only_scans_the_start() -> None:
    sql = "SELECT 1; " * 20_000  # 200 KB
    info = parse_sql(sql)
    assert 0 < info.statements < 20_000
    _bounded(info)


def test_non_string_input_does_not_raise() -> None:
    assert parse_sql(b"SELECT * FROM books").collection == "books"  # type: ignore[arg-type]
    assert parse_sql(None) is not None  # type: ignore[arg-type]
