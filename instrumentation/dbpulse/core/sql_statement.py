"""The structure of one SQL statement: its operation, the tables it names, summary items.

Read by :func:`dbpulse.core.sql.parse_sql` from the tokens of :mod:`dbpulse.core.sql_tokens`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TRANSACTION_WORDS", "ParsedStatement", "analyze", "join_summary"]

from dbpulse.core.sql_tokens import (
    KIND_OP,
    KIND_QUOTED,
    KIND_WORD,
    PLAIN_NAME,
    Token,
    words,
)

MAX_NAME_CHARS = 255
MAX_SUMMARY_CHARS = 255


# First words that name a statement; anything else gives operation "".
_STATEMENT_WORDS = words(
    "SELECT INSERT UPDATE DELETE REPLACE MERGE UPSERT WITH VALUES TABLE COPY CREATE DROP "
    "ALTER TRUNCATE BEGIN START COMMIT END ROLLBACK ABORT SAVEPOINT RELEASE PRAGMA VACUUM "
    "ANALYZE ANALYSE REINDEX ATTACH DETACH EXPLAIN SET RESET SHOW GRANT REVOKE LOCK LISTEN "
    "NOTIFY UNLISTEN CALL DO EXECUTE PREPARE DEALLOCATE DECLARE FETCH MOVE CLOSE DISCARD "
    "CLUSTER COMMENT CHECKPOINT REFRESH LOAD IMPORT SECURITY REASSIGN"
)
TRANSACTION_WORDS = words("BEGIN START COMMIT END ROLLBACK ABORT SAVEPOINT RELEASE PREPARE")
_WRITE_OPS = words("INSERT UPDATE DELETE REPLACE MERGE UPSERT")
_SCHEMA_WORDS = words("CREATE DROP ALTER TRUNCATE")
# Object types whose name goes into a schema statement's summary (others: type only).
_NAMED_OBJECTS = words("TABLE VIEW INDEX TRIGGER SEQUENCE RULE")
_SCHEMA_MODIFIERS = words(
    "OR REPLACE UNIQUE TEMP TEMPORARY UNLOGGED MATERIALIZED VIRTUAL GLOBAL LOCAL RECURSIVE "
    "FOREIGN CONSTRAINT"
)
# Previous tokens after which INSERT/UPDATE/DELETE/REPLACE/MERGE start a (sub)statement.
_STATEMENT_START_AFTER = words("( ) ; BEGIN EXPLAIN PLAN ANALYZE VERBOSE AS INSTEAD ALSO")
_EXPLAIN_OPTIONS = words("ANALYZE ANALYSE VERBOSE QUERY PLAN")
# Words that end a FROM list: after them a comma no longer introduces a table.
_FROM_LIST_END = words(
    "WHERE GROUP ORDER HAVING LIMIT OFFSET FETCH WINDOW UNION INTERSECT EXCEPT RETURNING "
    "SET VALUES FOR SELECT"
)
# Words that can never be a table name where one is expected.
_NOT_A_NAME = words(
    "SELECT WITH VALUES WHERE SET ON USING GROUP ORDER LIMIT HAVING UNION INTERSECT EXCEPT "
    "NATURAL LEFT RIGHT INNER OUTER FULL CROSS JOIN AS WINDOW RETURNING OFFSET FETCH FOR "
    "DEFAULT INTO FROM STDIN STDOUT NULL NOT EXISTS CASE WHEN THEN ELSE END AND OR"
)
# Words before "(" that make it a subquery or a list, not a function call.
_CLAUSE_WORDS = (
    _NOT_A_NAME
    | _STATEMENT_WORDS
    | words(
        "IN ANY ALL SOME LATERAL MATERIALIZED JOIN TABLE INDEX CONFLICT KEY CHECK UNIQUE "
        "REFERENCES PLAN"
    )
)

_QUERY_WORDS = words("SELECT INSERT UPDATE DELETE REPLACE MERGE WITH VALUES TABLE")
_NONE, _EXPECT_TABLE, _EXPECT_INTO, _EXPECT_CTE = range(4)
# Words that may stand before the table where one is expected (FROM ONLY t, INTO TEMP t).
_NAME_PREFIXES = words("ONLY LATERAL RECURSIVE")
_INTO_PREFIXES = words("TEMP TEMPORARY UNLOGGED TABLE BINARY")
_SET_OPERATORS = words("UNION INTERSECT EXCEPT")
# After "(": a subquery, not a join group; a set operand when it starts a query.
_SUBQUERY_STARTS = words("SELECT WITH VALUES TABLE")
_OPERAND_STARTS = _SUBQUERY_STARTS | {"("}


def _is_name(token: Token) -> bool:
    kind = token[0]
    return kind == KIND_QUOTED or (kind == KIND_WORD and token[2] not in _NOT_A_NAME)


def _unquote(raw: str) -> str:
    first = raw[0]
    if first == "[":
        return raw[1:-1]
    if first in "uU":  # U&"..."
        raw = raw[2:]
        first = raw[0]
    if first == '"' or first == "`":
        body = raw[1:-1] if len(raw) > 1 and raw[-1] == first else raw[1:]
        return body.replace(first * 2, first)
    return raw


def _read_name(tokens: list[Token], i: int) -> tuple[str, str, int]:
    """A dotted name at ``i``: (name without quotes, name as shown in a summary, next index)."""
    clean: list[str] = []
    shown: list[str] = []
    n = len(tokens)
    while True:
        kind, raw, _, _ = tokens[i]
        if kind == KIND_QUOTED:
            part = _unquote(raw)
            clean.append(part)
            shown.append(part if PLAIN_NAME.fullmatch(part) else raw)
        else:
            clean.append(raw)
            shown.append(raw)
        i += 1
        if (
            i + 1 < n
            and tokens[i][2] == "."
            and not tokens[i][3]
            and tokens[i + 1][0] in (KIND_WORD, KIND_QUOTED)
        ):
            i += 1
            continue
        return ".".join(clean), ".".join(shown), i


@dataclass(slots=True)
class ParsedStatement:
    operation: str
    collection: str | None
    summary: str
    is_write: bool


@dataclass(slots=True)
class _Frame:
    function: bool = False
    from_list: bool = False
    cte_body: bool = False
    # A join group "FROM (a JOIN b ...)" or a set operand "(SELECT ...) UNION ...": what it
    # names belongs to the enclosing level.
    transparent: bool = False
    # Whether "(" here can open a transparent set operand (not inside an expression).
    operands: bool = True


class _Scan:
    """Walks a statement's tokens once, noting operations and tables in order."""

    __slots__ = ("copy_direction", "ctes", "items", "operations", "tables")

    def __init__(self) -> None:
        self.items: list[str] = []
        self.operations: list[tuple[int, str]] = []
        self.tables: list[tuple[int, str]] = []
        self.ctes: set[str] = set()
        self.copy_direction = ""

    def run(self, tokens: list[Token], i: int, expect: int = _NONE, copy: bool = False) -> None:
        frames = [_Frame()]
        prev = before = ""
        cte_pending = after_cte = False
        depth = 0  # the frames that are not transparent
        n = len(tokens)
        while i < n:
            token = tokens[i]
            kind, _, upper, _ = token
            if expect != _NONE:
                if kind == KIND_WORD and (
                    upper in _NAME_PREFIXES or (expect == _EXPECT_INTO and upper in _INTO_PREFIXES)
                ):
                    i += 1
                    continue
                if upper == "ROWS" and i + 1 < n and tokens[i + 1][2] == "FROM":
                    i += 2  # ROWS FROM (f(), g()): table functions
                    expect, prev = _NONE, "ROWS"
                    continue
                if _is_name(token):
                    clean, shown, i = _read_name(tokens, i)
                    if expect == _EXPECT_CTE:
                        self.ctes.add(clean.lower())
                        cte_pending = True
                    elif not (expect == _EXPECT_TABLE and i < n and tokens[i][2] == "("):
                        self._table(depth, clean, shown, target=expect == _EXPECT_INTO)
                    expect, prev = _NONE, "name"
                    continue
                expect = _NONE
            if after_cte:
                after_cte = False
                if upper == ",":
                    expect = _EXPECT_CTE
                    prev = upper
                    i += 1
                    continue
            frame = frames[-1]
            if kind == KIND_OP:
                if upper == "(":
                    function = prev not in _CLAUSE_WORDS and (prev[:1].isalpha() or prev[:1] == "_")
                    cte_body = cte_pending and prev in ("AS", "MATERIALIZED")
                    if cte_body:
                        cte_pending = False
                    after = tokens[i + 1][2] if i + 1 < n else ""
                    join_group = (
                        (prev in ("FROM", "JOIN") or (prev in (",", "(") and frame.from_list))
                        and not function
                        and after not in _SUBQUERY_STARTS
                    )
                    operand = (
                        not join_group
                        and (
                            prev == ""
                            or prev == "("
                            or prev in _SET_OPERATORS
                            or (prev in ("ALL", "DISTINCT") and before in _SET_OPERATORS)
                        )
                        and frame.operands
                        and after in _OPERAND_STARTS
                    )
                    transparent = join_group or operand
                    new = _Frame(function, join_group, cte_body, transparent, operand)
                    frames.append(new)
                    if transparent:
                        if join_group:
                            expect = _EXPECT_TABLE
                    else:
                        depth += 1
                elif upper == ")":
                    if len(frames) > 1:
                        closed = frames.pop()
                        after_cte = closed.cte_body
                        if not closed.transparent:
                            depth -= 1
                elif upper == "," and frame.from_list:
                    expect = _EXPECT_TABLE
            elif kind == KIND_WORD:
                if upper == "SELECT":
                    frame.function = False
                    frame.from_list = False
                    self._operation(depth, upper)
                elif upper in _WRITE_OPS and (prev == "" or prev in _STATEMENT_START_AFTER):
                    follower = tokens[i + 1][2] if i + 1 < n else ""
                    if upper == "UPDATE":
                        if follower == "OR" and i + 2 < n:  # SQLite UPDATE OR REPLACE t
                            i += 2
                            follower = "ONLY"
                        if follower == "ONLY" or (i + 1 < n and _is_name(tokens[i + 1])):
                            self._operation(depth, upper)
                            expect = _EXPECT_INTO
                    elif (
                        (upper == "DELETE" and follower == "FROM")
                        or (upper in ("INSERT", "REPLACE", "MERGE") and follower == "INTO")
                        or (upper == "INSERT" and follower == "OR")
                    ):
                        self._operation(depth, upper)
                elif upper == "FROM" or upper == "TO":
                    if copy and len(frames) == 1:
                        self.copy_direction = upper
                    elif upper == "FROM" and prev == "DISTINCT" and before in ("IS", "NOT"):
                        pass  # a IS [NOT] DISTINCT FROM b
                    elif upper == "FROM" and not frame.function:
                        expect = _EXPECT_TABLE
                        frame.from_list = True
                elif upper == "JOIN":
                    expect = _EXPECT_TABLE
                elif (
                    upper == "USING"
                    and i + 1 < n
                    and tokens[i + 1][2] != "("
                    and self.operations
                    and self.operations[-1][1] in ("DELETE", "MERGE")
                ):  # DELETE FROM t USING u, MERGE INTO t USING s; not CYCLE ... USING path
                    expect = _EXPECT_TABLE
                    frame.from_list = True
                elif upper == "TABLE" and (
                    prev in ("", "(")
                    or prev in _SET_OPERATORS
                    or (prev in ("ALL", "DISTINCT") and before in _SET_OPERATORS)
                ):
                    self._operation(depth, "SELECT")  # TABLE t: SELECT * FROM t
                    expect = _EXPECT_TABLE
                elif upper == "INTO" and not frame.function:
                    expect = _EXPECT_INTO
                elif upper == "WITH":
                    expect = _EXPECT_CTE
                elif upper in _FROM_LIST_END:
                    frame.from_list = False
            before = prev
            prev = (
                upper if kind in (KIND_WORD, KIND_OP) else ("name" if kind == KIND_QUOTED else "?")
            )
            i += 1

    def _operation(self, depth: int, name: str) -> None:
        self.operations.append((depth, name))
        self.items.append(name)

    def _table(self, depth: int, clean: str, shown: str, target: bool = False) -> None:
        """``target``: INSERT INTO/UPDATE/COPY's table, never a CTE whatever its name."""
        if (clean.lower() in self.ctes and not target) or len(clean) > MAX_NAME_CHARS:
            return
        self.tables.append((depth, clean))
        self.items.append(shown)

    def main_table(self) -> str | None:
        for depth, name in self.tables:
            if depth == 0:
                return name
        return self.tables[0][1] if self.tables else None


def _first_word(tokens: list[Token]) -> int:
    """Index of the first token that is not an opening parenthesis."""
    for i, token in enumerate(tokens):
        if token[2] != "(":
            return i
    return len(tokens)


def analyze(tokens: list[Token]) -> ParsedStatement:
    start = _first_word(tokens)
    if start >= len(tokens) or tokens[start][0] != KIND_WORD:
        scan = _Scan()
        scan.run(tokens, 0)
        return ParsedStatement("", scan.main_table(), join_summary(scan.items), False)
    first = tokens[start][2]
    if first not in _STATEMENT_WORDS:
        return ParsedStatement("", None, "", False)
    scan = _Scan()
    if first in _QUERY_WORDS:
        scan.run(tokens, 0)
        operation = "SELECT" if first == "TABLE" else first
        if first == "WITH":
            top = [name for depth, name in scan.operations if depth == 0]
            operation = top[0] if top else (scan.operations[0][1] if scan.operations else "")
        elif first == "VALUES":
            scan.items.insert(0, first)
        is_write = any(name in _WRITE_OPS for _, name in scan.operations)
        return ParsedStatement(operation, scan.main_table(), join_summary(scan.items), is_write)
    inner = _inner_statement(tokens, start, first)
    if inner >= 0:
        # EXPLAIN [options] stmt, PREPARE name [(types)] AS stmt: named after the statement
        # inside (EXPLAIN CREATE TABLE t AS ... too).
        if inner < len(tokens) and tokens[inner][2] in _SCHEMA_WORDS:
            schema = _analyze_schema(tokens, inner, tokens[inner][2])
            summary = join_summary([first, *schema.summary.split(" ")])
            return ParsedStatement(first, schema.collection, summary, False)
        scan.items.append(first)
        scan.run(tokens, start + 1)
        return ParsedStatement(first, scan.main_table(), join_summary(scan.items), False)
    if first == "COPY":
        scan.items.append(first)
        scan.run(tokens, start + 1, expect=_EXPECT_INTO, copy=True)
        is_write = scan.copy_direction == "FROM"
        return ParsedStatement(first, scan.main_table(), join_summary(scan.items), is_write)
    if first in _SCHEMA_WORDS:
        return _analyze_schema(tokens, start, first)
    summary = first
    if first in ("PRAGMA", "CALL") and start + 1 < len(tokens) and _is_name(tokens[start + 1]):
        _, shown, _ = _read_name(tokens, start + 1)
        summary = join_summary([first, shown])
    return ParsedStatement(first, None, summary, False)


def _inner_statement(tokens: list[Token], start: int, first: str) -> int:
    """Where the statement inside ``EXPLAIN``/``PREPARE ... AS`` starts; -1 if none."""
    n = len(tokens)
    if first == "PREPARE":
        for i in range(start + 1, n):
            if tokens[i][2] == "AS":
                return i + 1
        return -1
    if first != "EXPLAIN":
        return -1
    i = start + 1
    if i < n and tokens[i][2] == "(":
        depth = 0
        while i < n:
            depth += 1 if tokens[i][2] == "(" else -1 if tokens[i][2] == ")" else 0
            i += 1
            if depth == 0:
                break
    while i < n and tokens[i][2] in _EXPLAIN_OPTIONS:
        i += 1
    return i


def _analyze_schema(tokens: list[Token], start: int, first: str) -> ParsedStatement:
    """``CREATE/DROP/ALTER/TRUNCATE [modifiers] [type] [IF [NOT] EXISTS] name ...``."""
    n = len(tokens)
    i = start + 1
    while i < n and tokens[i][0] == KIND_WORD and tokens[i][2] in _SCHEMA_MODIFIERS:
        i += 1
    items = [first]
    object_type = ""
    if (
        i < n
        and tokens[i][0] == KIND_WORD
        and not (first == "TRUNCATE" and tokens[i][2] != "TABLE")
    ):
        object_type = tokens[i][2]
        items.append(object_type)
        i += 1
    elif first == "TRUNCATE":
        object_type = "TABLE"
    while i < n and tokens[i][0] == KIND_WORD and tokens[i][2] in ("IF", "NOT", "EXISTS", "ONLY"):
        i += 1
    if object_type == "INDEX" and i < n and tokens[i][2] == "CONCURRENTLY":
        i += 1
    collection = None
    if object_type in _NAMED_OBJECTS and i < n and (_is_name(tokens[i]) or tokens[i][2] == "ON"):
        if tokens[i][2] != "ON":  # PostgreSQL's CREATE INDEX ON t (...) has no index name
            clean, shown, i = _read_name(tokens, i)
            if len(clean) <= MAX_NAME_CHARS:
                items.append(shown)
                if object_type in ("TABLE", "VIEW"):
                    collection = clean
        if object_type in ("INDEX", "TRIGGER", "RULE"):
            # CREATE INDEX ... ON t, CREATE TRIGGER ... ON t, CREATE RULE r AS ON event TO t
            on = "TO" if object_type == "RULE" and first == "CREATE" else "ON"
            for j in range(i, n - 1):
                if tokens[j][2] == on:
                    k = j + 2 if tokens[j + 1][2] == "ONLY" and j + 2 < n else j + 1
                    if _is_name(tokens[k]):
                        target, _, _ = _read_name(tokens, k)
                        if len(target) <= MAX_NAME_CHARS:
                            collection = target
                    break
    scan = _Scan()
    scan.items = items
    scan.run(tokens, i)
    if collection is None:
        collection = scan.main_table()
    return ParsedStatement(first, collection, join_summary(scan.items), False)


def join_summary(items: list[str]) -> str:
    """Words joined by spaces, stopping before the word that would pass 255 characters."""
    out: list[str] = []
    length = -1
    for item in items:
        length += len(item) + 1
        if length > MAX_SUMMARY_CHARS:
            break
        out.append(item)
    return " ".join(out)


# --- entry point -----------------------------------------------------------------------------
