"""No literal survives in db.query.text: every literal form of SQLite, PostgreSQL and DuckDB,
in every grammar position where a value goes (property tests with a marker inside)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbpulse.core.sql import parse_sql

# Positions where any literal goes. "{}" is the literal.
VALUE_POSITIONS = [
    "SELECT * FROM t WHERE a = {}",
    "SELECT * FROM t WHERE a <> {} AND b = 1",
    "SELECT * FROM t WHERE a != {} OR a >= {}",
    "SELECT * FROM t WHERE a = -{}",
    "SELECT * FROM t WHERE a = 1 OR a = {}",
    "SELECT * FROM t WHERE a IS {}",
    "SELECT * FROM t WHERE a IS NOT {}",
    "SELECT * FROM t WHERE a IN (1, {})",
    "SELECT * FROM t WHERE a NOT IN ({}, 2)",
    "SELECT * FROM t WHERE a BETWEEN {} AND 5",
    "SELECT * FROM t WHERE a BETWEEN 1 AND {}",
    "SELECT * FROM t WHERE a LIKE {} ESCAPE '!'",
    "SELECT * FROM t WHERE a GLOB {}",
    "SELECT * FROM t WHERE lower(a) = lower({})",
    "SELECT * FROM t WHERE (a, b) = (1, {})",
    "SELECT * FROM t WHERE x::text = {}",
    "SELECT * FROM t WHERE data ->> 'k' = {}",
    "SELECT * FROM t WHERE a = {} COLLATE NOCASE",
    "SELECT * FROM t WHERE a = ANY(ARRAY[{}])",
    "SELECT * FROM t WHERE a IN (SELECT b FROM u WHERE c = {})",
    "SELECT * FROM t JOIN u ON u.a = {} AND u.b = t.b",
    "SELECT * FROM t GROUP BY a HAVING count(*) > {}",
    "SELECT * FROM t LIMIT {}",
    "SELECT * FROM t LIMIT 5 OFFSET {}",
    "SELECT a || {} FROM t",
    "SELECT CASE WHEN a = 1 THEN {} ELSE {} END FROM t",
    "SELECT CASE a WHEN {} THEN 1 END FROM t",
    'SELECT * FROM "t" WHERE "a" = {}',
    "INSERT INTO t (a, b) VALUES (1, {})",
    "INSERT INTO t VALUES ({}), ({})",
    "INSERT INTO t VALUES (1, 2), (3, {})",
    "INSERT INTO t VALUES (lower({}))",
    'INSERT INTO "t" ("a") VALUES ({})',
    "INSERT INTO t VALUES (1) ON CONFLICT (a) DO UPDATE SET b = {}",
    "UPDATE t SET a = {} WHERE id = ?",
    "UPDATE t SET a = coalesce(b, {})",
    "DELETE FROM t WHERE a = {}",
    "CREATE TABLE t (a TEXT DEFAULT {})",
    "CREATE TABLE t (a TEXT CHECK (a IN ({})))",
    "VALUES ({})",
    "PRAGMA key = {}",
    "PRAGMA main.key = {}",
    "PRAGMA key({})",
    "SET app.tenant = {}",
    "SET search_path TO {}",
    "SET search_path TO public, {}",
    "SET LOCAL app.x = {}",
    "ALTER ROLE r SET app.x = {}",
    "SELECT [1, {}]",
    "SELECT {{'k': {}}}",
    "SELECT * FROM t WHERE a = {}; SELECT 2",
    "BEGIN; UPDATE t SET a = {}; COMMIT",
    "/* c */ SELECT * FROM t WHERE a = {} -- trailing",
    "ATTACH DATABASE {} AS aux",
    "ATTACH {} AS aux KEY {}",
    "VACUUM INTO {}",
    "COMMENT ON TABLE t IS {}",
]
# Positions where a literal token is a value, but a double-quoted one would be a name.
ANY_POSITIONS = [
    "SELECT {} FROM t",
    "SELECT {}",
    "SELECT f({}) FROM t",
    "SELECT coalesce(a, {}) FROM t",
    "INSERT INTO t SELECT 1, {}",
    "SELECT * FROM t ORDER BY {}",
    "SELECT * FROM t WHERE a = (SELECT {})",
    "WITH c AS (SELECT {} AS v) SELECT * FROM c",
    "SELECT {} AS x, a FROM t",
    "SELECT ARRAY[[1, 2], [{}, 4]]",
    "SELECT [[{}]]",
    "CALL proc({})",
    "COPY t FROM {}",
]
# Positions where a bare word is a value.
WORD_POSITIONS = [
    "PRAGMA key = {}",
    "PRAGMA key({})",
    "PRAGMA main.key = {}",
    "SET app.tenant = {}",
    "SET app.tenant TO {}",
    "SET search_path TO {}",
    "SET search_path TO public, {}",
    "SET SESSION app.x TO {}",
    "SET LOCAL app.x = {}",
    "SET ROLE {}",
    "SET SESSION AUTHORIZATION {}",
    "SET TIME ZONE {}",
    "ALTER ROLE r SET app.x TO {}",
    "ALTER DATABASE d SET app.x = {}",
]

SECRETS = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=30
)


def _exported(sql: str) -> str:
    info = parse_sql(sql)
    return f"{info.sanitized}\n{info.summary}\n{info.collection}\n{info.operation}"


def _string_forms(marked: str) -> list[str]:
    quoted = marked.replace("'", "''")
    forms = [
        f"'{quoted}'",
        "E'" + marked.replace("\\", "\\\\").replace("'", "\\'") + "'",
        f"N'{quoted}'",
        f"INTERVAL '{quoted}'",
        f"'{quoted}'::text",
        f"[1, '{quoted}']",
        f"{{'k': '{quoted}'}}",
    ]
    if "$$" not in marked and not marked.endswith("$"):
        forms.append(f"$${marked}$$")
    if "$tag$" not in marked:
        forms.append(f"$tag${marked}$tag$")
    return forms


def _check(forms: list[str], positions: list[str], marker: str) -> None:
    for form in forms:
        for position in positions:
            sql = position.replace("{}", form)
            assert marker not in _exported(sql), sql


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(secret=SECRETS)
def test_string_literals_never_survive(secret: str) -> None:
    marked = "Zq" + secret + "qZ"
    _check(_string_forms(marked), VALUE_POSITIONS + ANY_POSITIONS, marked)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(secret=SECRETS.filter(lambda s: "." not in s))
def test_double_quoted_values_never_survive(secret: str) -> None:
    # SQLite reads "..." as a string where no column has that name: every value position.
    marked = "Zq" + secret + "qZ"
    form = '"' + marked.replace('"', '""') + '"'
    _check([form, f"`{marked.replace('`', '``')}`"], VALUE_POSITIONS, marked)


@settings(max_examples=60, deadline=None)
@given(number=st.integers(min_value=10**9, max_value=10**15), fraction=st.integers(0, 999))
def test_numbers_in_every_base_never_survive(number: int, fraction: int) -> None:
    digits = str(number)
    grouped = f"{number:_}"
    forms = {
        digits: [digits, grouped, f"{digits}.{fraction}", f"{digits}e5", f"{grouped}.5E-3"],
        f"{number:x}": [f"0x{number:x}", f"0X{number:X}", f"0x{number:_x}"],
        f"{number:o}": [f"0o{number:o}", f"0O{number:_o}"],
        f"{number:b}": [f"0b{number:b}", f"0B{number:_b}"],
    }
    for marker, written in forms.items():
        _check(written, VALUE_POSITIONS + ANY_POSITIONS, marker)
        _check(written, VALUE_POSITIONS, marker.upper())


@settings(max_examples=60, deadline=None)
@given(blob=st.binary(min_size=4, max_size=16))
def test_blobs_and_bits_never_survive(blob: bytes) -> None:
    marker = "DEAD" + blob.hex().upper()
    bits = "1011" + "".join(f"{b:08b}" for b in blob)
    _check([f"X'{marker}'", f"x'{marker.lower()}'"], VALUE_POSITIONS + ANY_POSITIONS, marker)
    _check([f"B'{bits}'"], VALUE_POSITIONS + ANY_POSITIONS, bits)


@settings(max_examples=60, deadline=None)
@given(word=st.from_regex(r"[A-Za-z][A-Za-z0-9_]{2,20}", fullmatch=True))
def test_bare_word_values_never_survive(word: str) -> None:
    marked = "Zq" + word + "qZ"
    _check([marked, f'"{marked}"', f"'{marked}'"], WORD_POSITIONS, marked)


@pytest.mark.parametrize(
    ("sql", "sanitized"),
    [
        ('INSERT INTO u (n, pw) VALUES ("alice", "secret")', "INSERT INTO u (n, pw) VALUES (?, ?)"),
        ('SELECT * FROM u WHERE name = "bob"', "SELECT * FROM u WHERE name = ?"),
        ('PRAGMA key = "secret"', "PRAGMA key = ?"),
        ("PRAGMA key = secret", "PRAGMA key = ?"),
        ("PRAGMA journal_mode = WAL", "PRAGMA journal_mode = ?"),
        ("SET app.tenant = secret", "SET app.tenant = ?"),
        ("SET search_path TO x", "SET search_path TO ?"),
        ("SELECT * FROM [unterminated secret", "SELECT * FROM ?"),
        ("SELECT 0o17, 0b101, 0x1F, 1_000, 0x1F_FF", "SELECT ?, ?, ?, ?, ?"),
        ("SELECT ARRAY[[1,2],[3,4]]", "SELECT ARRAY[[?,?],[?,?]]"),
        ("SELECT [1, 'a'], {'k': 'v'}, []", "SELECT [?, ?], {?: ?}, []"),
        ("SELECT INTERVAL '1 day', x'00', E'a\\'b', $t$ s $t$", "SELECT INTERVAL ?, ?, ?, ?"),
        # names stay names
        ('SELECT "col" FROM "table"', 'SELECT "col" FROM "table"'),
        ('INSERT INTO "t" ("a") VALUES (?)', 'INSERT INTO "t" ("a") VALUES (?)'),
        ('CREATE TABLE "x" ("a" TEXT)', 'CREATE TABLE "x" ("a" TEXT)'),
        (
            'SELECT * FROM "a" JOIN "b" ON "a"."id" = "b"."aid"',
            'SELECT * FROM "a" JOIN "b" ON "a"."id" = "b"."aid"',
        ),
        (
            'INSERT INTO t VALUES (?) ON CONFLICT ("a") DO UPDATE SET "b" = excluded."b"',
            'INSERT INTO t VALUES (?) ON CONFLICT ("a") DO UPDATE SET "b" = excluded."b"',
        ),
        ("SELECT [title] FROM [main].[books]", "SELECT [title] FROM [main].[books]"),
        ("ALTER TABLE t RENAME TO u", "ALTER TABLE t RENAME TO u"),
    ],
)
def test_issue_cases(sql: str, sanitized: str) -> None:
    assert parse_sql(sql).sanitized == sanitized


@pytest.mark.parametrize(
    ("sql", "collection", "summary"),
    [
        ('SELECT "col" FROM "table" WHERE "x" = "v"', "table", "SELECT table"),
        ('INSERT INTO "t" ("a") VALUES ("v")', "t", "INSERT t"),
        ('CREATE TABLE "x" ("a" TEXT DEFAULT "v")', "x", "CREATE TABLE x"),
        ('UPDATE "t" SET "a" = "v" WHERE "id" IN ("1", "2")', "t", "UPDATE t"),
        ('DELETE FROM "t" WHERE "a" = "v"', "t", "DELETE t"),
    ],
)
def test_double_quoted_names_keep_naming_tables(sql: str, collection: str, summary: str) -> None:
    info = parse_sql(sql)
    assert (info.collection, info.summary) == (collection, summary)
    assert '"v"' not in info.sanitized
