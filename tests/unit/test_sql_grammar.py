"""Property tests for the grammar positions found on real SQL: join groups, set operands in
parentheses, ``TABLE t``, ``CREATE INDEX [name] ON [ONLY] t``, ``EXPLAIN (...) CREATE TABLE
AS``, ``PREPARE ... AS UPDATE``, ``IS [NOT] DISTINCT FROM``, ``;`` inside parentheses and
nested ``VALUES``: the main table is the right one and a literal with a marker never survives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dbpulse.core.sql import parse_sql

_KEYWORDS = frozenset(
    "SELECT FROM JOIN ON AS ONLY TABLE ROWS LATERAL IN IS OR AND NOT WHERE USING NATURAL LEFT "
    "RIGHT FULL CROSS INNER OUTER WITH VALUES SET INTO DO TO BY END CASE NULL ALL ANY SOME "
    "ORDER GROUP LIMIT UNION INTERSECT EXCEPT HAVING OFFSET FETCH WINDOW FOR DEFAULT EXISTS "
    "WHEN THEN ELSE RETURNING DISTINCT BETWEEN LIKE TRUE FALSE".split()
)
NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True).filter(
    lambda n: n.upper() not in _KEYWORDS
)
MARKS = st.integers(min_value=10**6, max_value=10**9).map(lambda n: f"Zq{n}qZ")
JOINS = st.sampled_from(["JOIN", "LEFT JOIN", "CROSS JOIN", "INNER JOIN", "FULL OUTER JOIN"])
SET_OPS = st.sampled_from(["UNION", "UNION ALL", "INTERSECT", "EXCEPT", "EXCEPT ALL"])
FAST = settings(max_examples=60, deadline=None)


def _exported(sql: str) -> str:
    info = parse_sql(sql)
    return f"{info.sanitized}\n{info.summary}\n{info.collection}"


@st.composite
def join_groups(draw: st.DrawFn) -> tuple[str, str, list[str]]:
    """``(a JOIN (b JOIN c ON ...) ON ...)`` nested to a random depth; its first table."""
    marks: list[str] = []

    def group(depth: int) -> tuple[str, str]:
        if depth == 0 or draw(st.booleans()):
            name = draw(NAMES)
            return name, name
        left_sql, first = group(depth - 1)
        right_sql, _ = group(depth - 1)
        mark = draw(MARKS)
        marks.append(mark)
        join = draw(JOINS)
        on = "" if join == "CROSS JOIN" else f" ON {first}.k = '{mark}'"
        return f"({left_sql} {join} {right_sql}{on})", first

    sql, first = group(draw(st.integers(min_value=1, max_value=4)))
    return sql, first, marks


@FAST
@given(join_groups(), JOINS, NAMES, MARKS)
def test_tables_in_join_groups_are_top_level(
    group: tuple[str, str, list[str]], join: str, other: str, mark: str
) -> None:
    sql_group, first, marks = group
    on = "" if join == "CROSS JOIN" else f" ON {other}.id = {mark!r}"
    sql = f"SELECT * FROM {sql_group} {join} {other}{on} WHERE x = '{mark}'"
    info = parse_sql(sql)
    assert info.collection == first
    assert all(m not in _exported(sql) for m in [*marks, mark])


@FAST
@given(NAMES, NAMES, SET_OPS, MARKS, st.integers(min_value=0, max_value=3), st.booleans())
def test_set_operands_in_parentheses_name_the_first_table(
    a: str, b: str, op: str, mark: str, depth: int, right_parens: bool
) -> None:
    left = "(" * depth + f"SELECT v FROM {a} WHERE k = '{mark}'" + ")" * depth
    right = f"SELECT v FROM {b} WHERE k = {mark[2:-2]}"
    sql = f"{left} {op} " + (f"({right})" if right_parens else right)
    info = parse_sql(sql)
    assert info.operation == "SELECT"
    assert info.collection == a
    assert mark not in info.sanitized and mark[2:-2] not in info.sanitized


@FAST
@given(NAMES, st.sampled_from(["", "TABLE ", "table "]))
def test_table_statement_is_a_select(name: str, word: str) -> None:
    sql = f"{word or 'TABLE '}{name}"
    info = parse_sql(sql)
    assert (info.operation, info.collection, info.summary) == ("SELECT", name, f"SELECT {name}")


@FAST
@given(
    NAMES,
    st.one_of(st.just(""), NAMES.map(lambda n: f"ix_{n} ")),
    st.sampled_from(["", "ONLY "]),
    st.sampled_from(["", "UNIQUE ", "CONCURRENTLY "]),
    MARKS,
)
def test_create_index_names_its_table(
    table: str, index: str, only: str, modifier: str, mark: str
) -> None:
    unique, concurrently = (modifier, "") if modifier == "UNIQUE " else ("", modifier)
    sql = (
        f"CREATE {unique}INDEX {concurrently}{index}ON {only}{table} USING btree (lower(a)) "
        f"WHERE b = '{mark}'"
    )
    info = parse_sql(sql)
    assert info.operation == "CREATE"
    assert info.collection == table
    assert mark not in _exported(sql)


@FAST
@given(
    NAMES,
    NAMES,
    st.sampled_from(["", "(COSTS OFF) ", "(ANALYZE, COSTS OFF, TIMING OFF) ", "ANALYZE "]),
    st.sampled_from(["TABLE", "MATERIALIZED VIEW", "TABLE IF NOT EXISTS"]),
    MARKS,
)
def test_explain_create_as_names_the_new_table(
    target: str, source: str, options: str, kind: str, mark: str
) -> None:
    sql = f"EXPLAIN {options}CREATE {kind} {target} AS SELECT a FROM {source} WHERE b = '{mark}'"
    info = parse_sql(sql)
    assert info.operation == "EXPLAIN"
    assert info.collection == target
    assert mark not in _exported(sql)


@FAST
@given(NAMES, NAMES, st.sampled_from(["UPDATE {t} SET a = $1", "DELETE FROM {t} WHERE a = $1"]))
def test_prepare_names_the_statement_inside(name: str, table: str, body: str) -> None:
    info = parse_sql(f"PREPARE {name} (int) AS " + body.format(t=table))
    assert (info.operation, info.collection) == ("PREPARE", table)


@FAST
@given(NAMES, NAMES, st.sampled_from(["IS DISTINCT FROM", "IS NOT DISTINCT FROM"]), MARKS)
def test_is_distinct_from_is_no_from_clause(table: str, column: str, op: str, mark: str) -> None:
    sql = f"SELECT * FROM {table} WHERE {column} {op} '{mark}' AND k {op} {column}.x"
    info = parse_sql(sql)
    assert info.collection == table
    assert info.summary == f"SELECT {table}"
    assert mark not in info.sanitized


@FAST
@given(NAMES, st.lists(MARKS, min_size=1, max_size=4))
def test_semicolons_inside_parentheses_do_not_split(table: str, marks: list[str]) -> None:
    actions = "; ".join(f"INSERT INTO {table}_log VALUES ('{m}')" for m in marks)
    sql = f"CREATE RULE r AS ON DELETE TO {table} DO ALSO ({actions})"
    info = parse_sql(sql)
    assert info.statements == 1
    assert (info.operation, info.collection) == ("CREATE", table)
    assert all(m not in _exported(sql) for m in marks)


@FAST
@given(st.integers(min_value=1, max_value=300), MARKS)
def test_nested_values_are_sanitized(depth: int, mark: str) -> None:
    sql = "INSERT INTO t VALUES " + "(VALUES " * depth + f"'{mark}'" + ")" * depth
    info = parse_sql(sql)
    assert (info.operation, info.collection) == ("INSERT", "t")
    assert mark not in info.sanitized and info.sanitized.startswith("INSERT INTO t VALUES")


def test_long_and_deep_texts_stay_bounded() -> None:
    """Pathological texts (1 MiB) give bounded outputs; parse_sql reads 64 KiB of them."""
    mib = 1 << 20
    for sql in (
        "SELECT ARRAY" + "[" * (mib // 2) + "1" + "]" * (mib // 2),
        "SELECT * FROM " + "(" * (mib // 2) + "t" + ")" * (mib // 2),
        "INSERT INTO t VALUES " + "(VALUES " * (mib // 8),
        "SELECT " + "a." * (mib // 2) + "b FROM t",
    ):
        info = parse_sql(sql)
        assert info.operation in ("SELECT", "INSERT")
        assert len(info.sanitized) <= 2048 and len(info.summary) <= 255


@FAST
@given(NAMES, NAMES, st.sampled_from(["ALL", "ANY", "SOME", "DISTINCT"]), MARKS)
def test_subquery_after_all_or_any_is_not_a_set_operand(
    table: str, other: str, word: str, mark: str
) -> None:
    op = "IS DISTINCT FROM" if word == "DISTINCT" else f"= {word}"
    sql = f"SELECT x {op} (SELECT b FROM {other} WHERE c = '{mark}') FROM {table}"
    if word == "DISTINCT":
        sql = f"SELECT DISTINCT (SELECT b FROM {other} WHERE c = '{mark}') FROM {table}"
    info = parse_sql(sql)
    assert info.collection == table
    assert mark not in info.sanitized
