"""SQL statement parsing: operation, main table, query summary and sanitized text.

``parse_sql(text)`` reads one SQL text (a single statement or an ``executescript`` script) and
returns the values of the span attributes ``db.operation.name``, ``db.collection.name``,
``db.query.summary`` and ``db.query.text``::

    >>> info = parse_sql("INSERT INTO books (isbn, title) VALUES ('9780140449136', 'Odyssey')")
    >>> info.operation, info.collection, info.summary
    ('INSERT', 'books', 'INSERT books')
    >>> info.sanitized
    'INSERT INTO books (isbn, title) VALUES (?, ?)'

It is a small tokenizer for the SQLite and PostgreSQL dialects, not a full parser. The caller
caches the result per distinct text, so the cost (~30 µs for a 100-character INSERT) is paid
once per statement shape. ``parse_sql`` never raises.

Decisions, following the stable database semantic conventions:

- ``operation``: the statement's first keyword, upper-cased (``select`` -> ``SELECT``) so span
  names stay low-cardinality. ``WITH ... INSERT`` is ``INSERT``; SQLite ``INSERT OR REPLACE`` is
  ``INSERT``; ``REPLACE INTO`` is ``REPLACE``. Words that are not SQL statement keywords give
  ``""``.
- ``collection``: the first table named at the statement's top level (``INSERT INTO t``,
  ``UPDATE t``, ``DELETE FROM t``, ``SELECT ... FROM t``, ``COPY t``, ``CREATE TABLE t``,
  ``CREATE INDEX ... ON t``); when the top level names none (``SELECT * FROM (SELECT ...)``), the
  first table named anywhere. Quotes are stripped (``"t"``, ```t```, ``[t]`` -> ``t``), schema
  qualification is kept (``main.books``). CTE names and table functions are not tables.
- ``summary``: ``{operation} {target} {operation} {target} ...`` in the order they appear, e.g.
  ``INSERT shipping_details SELECT orders`` or ``SELECT books authors``; schema statements keep
  their object type (``CREATE TABLE books``); names that need quoting keep their quotes
  (``SELECT "song list"``). At most 255 characters, cut between words.
- ``sanitized``: comments removed, whitespace collapsed, every string, number, blob/bit/hex,
  dollar-quoted and ``TRUE``/``FALSE`` literal replaced by ``?``; placeholders (``?``, ``?1``,
  ``:name``, ``@name``, ``$name``, ``$1``, ``%s``, ``%(name)s``) kept. ``IN (?, ?, ?)`` is
  collapsed to ``IN (?)`` and a run of identical ``VALUES`` rows to the first row and ``, ...``,
  so a bulk insert of any size has one short text. At most 2048 characters.
- Strings follow PostgreSQL's ``standard_conforming_strings=on`` and SQLite: a backslash is an
  ordinary character except in ``E'...'``. Double-quoted text is a name, so SQLite's legacy
  double-quoted strings are not sanitized; those containing ``'``, ``@`` or a newline (an
  e-mail address, say) and unterminated quotes are replaced by ``?`` like literals.
- Several statements (``"a; b;"``) form a batch, as the conventions define it:
  ``statements`` counts them; transaction control (``BEGIN``, ``COMMIT``, ``SAVEPOINT``, ...)
  is left out when choosing the batch's names; if the remaining statements share an operation
  it is ``BATCH {operation}`` (``BATCH INSERT``), else ``BATCH``; the same for the summary; the
  collection is kept only when they all share it. ``is_write`` is true if any statement writes.
- Bounded work: only the first 64 KiB of the text is read (a longer text's statements beyond
  that are not counted); the outputs have the bounds above.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["SqlInfo", "parse_sql"]

MAX_SCAN_CHARS = 64 * 1024
MAX_SUMMARY_CHARS = 255
MAX_TEXT_CHARS = 2048
MAX_NAME_CHARS = 255


@dataclass(frozen=True, slots=True)
class SqlInfo:
    """What a SQL text tells about the database call, ready to be span attributes."""

    operation: str
    collection: str | None
    summary: str
    sanitized: str
    is_write: bool
    statements: int


EMPTY = SqlInfo(
    operation="", collection=None, summary="", sanitized="", is_write=False, statements=0
)

# --- tokenizer -------------------------------------------------------------------------------

_WORD, _QUOTED, _LITERAL, _PARAM, _OP = range(5)

# One token with the whitespace before it; the most frequent alternatives first, since the
# regex tries them in order (this order halved the tokenizer's time).
_TOKEN = re.compile(
    r"""
    \s*+
    (?:
     (?P<word>[^\W\d][\w$]*)
    |(?P<op>[(),;=*<>+|])
    |(?P<dollar>\$(?P<tag>(?:[^\W\d]\w*)?)\$.*?(?:\$(?P=tag)\$|\Z))
    |(?P<param>\?\d*|[:@$][^\W\d][\w$]*|\$\d+|%\([^)]*\)s|%s)
    |(?P<str>'[^']*(?:''[^']*)*'?)
    |(?P<num>0[xX][0-9A-Fa-f_]*|(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?)
    |(?P<line_comment>--[^\n]*)
    |(?P<block_comment>/\*)
    |(?P<cast>::)
    |(?P<dquote>"[^"]*(?:""[^"]*)*"?)
    |(?P<btick>`[^`]*(?:``[^`]*)*`?)
    |(?P<other>\S)
    )
    """,
    re.VERBOSE | re.DOTALL,
)
# E'...' (backslash escapes), X'...' (blob), B'...' (bits), N'...' (national): one literal.
_ESCAPE_STRING = re.compile(r"'(?:[^'\\]|\\.|'')*'?", re.DOTALL)
_PREFIXED = frozenset("eExXbBnN")
_STRING = re.compile(r"'[^']*(?:''[^']*)*'?")
_BRACKET_IDENT = re.compile(r"\[[^\]\['\n]*\]")
_LITERAL_LIKE = re.compile(r"['@\n]")
_COMMENT_MARK = re.compile(r"/\*|\*/")
_PLAIN_NAME = re.compile(r"[^\W\d][\w$]*")

_KIND = {
    "estr": _LITERAL,
    "pstr": _LITERAL,
    "str": _LITERAL,
    "dollar": _LITERAL,
    "num": _LITERAL,
    "dquote": _QUOTED,
    "btick": _QUOTED,
    "param": _PARAM,
    "word": _WORD,
    "cast": _OP,
    "op": _OP,
    "other": _OP,
}

# A token: (kind, text, upper-cased text for words else text, whitespace before it).
_Token = tuple[int, str, str, bool]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words after which "[" opens a SQLite bracket-quoted name rather than a PostgreSQL subscript.
_BRACKET_AFTER = _words(
    "SELECT FROM JOIN INTO UPDATE TABLE ON WHERE AND OR NOT BY SET AS INDEX VIEW TRIGGER "
    "EXISTS DISTINCT ALL USING VALUES RETURNING HAVING WHEN THEN ELSE"
)


def _skip_block_comment(text: str, pos: int) -> int:
    """End of a ``/* ... */`` comment opened before ``pos``; nested as PostgreSQL does."""
    depth = 1
    for mark in _COMMENT_MARK.finditer(text, pos):
        depth += 1 if mark.group() == "/*" else -1
        if depth == 0:
            return mark.end()
    return len(text)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    append = tokens.append
    match = _TOKEN.match
    pos, end, space = 0, len(text), False
    while pos < end:
        m = match(text, pos)
        if m is None:  # only whitespace left
            break
        group = m.lastgroup or "other"
        start = m.start(group)
        space = space or start > pos
        pos = m.end()
        if group == "line_comment":
            space = True
            continue
        if group == "block_comment":
            pos, space = _skip_block_comment(text, pos), True
            continue
        raw = m.group(group)
        if raw == "[" and _opens_bracket_name(tokens):
            bracket = _BRACKET_IDENT.match(text, start)
            if bracket is not None:
                raw = bracket.group()
                pos = bracket.end()
                append((_QUOTED, raw, raw, space))
                space = False
                continue
        kind = _KIND[group]
        if kind == _QUOTED and (not _is_terminated(raw) or _LITERAL_LIKE.search(raw)):
            # Unterminated: hide what it swallowed. With "'" or "@": more likely one of SQLite's
            # legacy double-quoted strings ("bob@example.com") than a name.
            kind = _LITERAL
        if kind == _WORD:
            if pos < end and text[pos] == "'" and len(raw) == 1 and raw in _PREFIXED:
                literal = (_ESCAPE_STRING if raw in "eE" else _STRING).match(text, pos)
                if literal is not None:
                    pos = literal.end()
                    append((_LITERAL, raw + literal.group(), "?", space))
                    space = False
                    continue
            upper = raw.upper()
            if upper == "TRUE" or upper == "FALSE":
                kind = _LITERAL
            append((kind, raw, upper, space))
        else:
            append((kind, raw, raw, space))
        space = False
    return tokens


def _is_terminated(quoted: str) -> bool:
    quote = quoted[0]
    body = quoted[1:]
    return (len(body) - len(body.rstrip(quote))) % 2 == 1


def _opens_bracket_name(tokens: list[_Token]) -> bool:
    if not tokens:
        return True
    kind, _, upper, _ = tokens[-1]
    if kind == _WORD:
        return upper in _BRACKET_AFTER
    return kind == _OP and upper not in (")", "]")


def _split_statements(tokens: list[_Token]) -> list[list[_Token]]:
    """Split at ``;``, except inside the ``BEGIN ... END`` body of a ``CREATE TRIGGER``."""
    statements: list[list[_Token]] = []
    current: list[_Token] = []
    block = 0
    for token in tokens:
        kind, _, upper, _ = token
        if kind == _OP and upper == ";" and block == 0:
            if current:
                statements.append(current)
            current = []
            continue
        if kind == _WORD and current and current[0][2] == "CREATE":
            if upper == "BEGIN" or (upper == "CASE" and block):
                block += 1
            elif upper == "END" and block:
                block -= 1
        current.append(token)
    if current:
        statements.append(current)
    return statements


# --- sanitized text --------------------------------------------------------------------------


def _is_single_value(token: _Token) -> bool:
    return token[0] == _LITERAL or (token[0] == _PARAM and token[1] == "?")


def _collapsible_in_list(tokens: list[_Token], i: int) -> int:
    """Index after ``(?, ?, ...)`` starting at ``i`` (two or more bare values), else 0."""
    n = len(tokens)
    if i >= n or tokens[i][2] != "(":
        return 0
    j, values = i + 1, 0
    while j < n and _is_single_value(tokens[j]):
        values += 1
        j += 1
        if j < n and tokens[j][2] == ",":
            j += 1
        elif j < n and tokens[j][2] == ")":
            return j + 1 if values > 1 else 0
        else:
            return 0
    return 0


def _group_end(tokens: list[_Token], i: int) -> int:
    """Index after the parenthesized group opened at ``i``."""
    depth = 0
    for j in range(i, len(tokens)):
        text = tokens[j][2]
        if tokens[j][0] == _OP:
            if text == "(":
                depth += 1
            elif text == ")":
                depth -= 1
                if depth == 0:
                    return j + 1
    return len(tokens)


def _sanitize(tokens: list[_Token], limit: int) -> str:
    parts: list[str] = []
    length = 0
    i, n = 0, len(tokens)
    while i < n and length <= limit:
        kind, raw, upper, space = tokens[i]
        piece = "?" if kind == _LITERAL else raw
        if parts and space:
            parts.append(" ")
            length += 1
        if kind == _WORD and upper == "IN":
            after = _collapsible_in_list(tokens, i + 1)
            if after:
                piece = raw + (" (?)" if tokens[i + 1][3] else "(?)")
                i = after - 1
        elif kind == _WORD and upper == "VALUES" and i + 1 < n and tokens[i + 1][2] == "(":
            piece, i = _sanitize_values(tokens, i, limit)
            i -= 1
        parts.append(piece)
        length += len(piece)
        i += 1
    return "".join(parts)


def _sanitize_values(tokens: list[_Token], i: int, limit: int) -> tuple[str, int]:
    """``VALUES (row), (row), ...`` with runs of identical rows shown once, then ``, ...``."""
    out = [tokens[i][1], " "]
    previous, repeated, first = None, False, True
    j, n = i + 1, len(tokens)
    while j < n and tokens[j][2] == "(":
        end = _group_end(tokens, j)
        row = "(" + _sanitize(tokens[j + 1 : end - 1], limit) + ")"
        if row == previous:
            repeated = True
        else:
            if repeated:
                out.append(", ...")
                repeated = False
            if not first:
                out.append(", ")
            out.append(row)
            previous, first = row, False
        j = end
        if j + 1 < n and tokens[j][2] == "," and tokens[j + 1][2] == "(":
            j += 1
        else:
            break
    if repeated:
        out.append(", ...")
    return "".join(out), j


# --- structure -------------------------------------------------------------------------------

# First words that name a statement; anything else gives operation "".
_STATEMENT_WORDS = _words(
    "SELECT INSERT UPDATE DELETE REPLACE MERGE UPSERT WITH VALUES TABLE COPY CREATE DROP "
    "ALTER TRUNCATE BEGIN START COMMIT END ROLLBACK ABORT SAVEPOINT RELEASE PRAGMA VACUUM "
    "ANALYZE ANALYSE REINDEX ATTACH DETACH EXPLAIN SET RESET SHOW GRANT REVOKE LOCK LISTEN "
    "NOTIFY UNLISTEN CALL DO EXECUTE PREPARE DEALLOCATE DECLARE FETCH MOVE CLOSE DISCARD "
    "CLUSTER COMMENT CHECKPOINT REFRESH LOAD IMPORT SECURITY REASSIGN"
)
_TRANSACTION_WORDS = _words("BEGIN START COMMIT END ROLLBACK ABORT SAVEPOINT RELEASE PREPARE")
_WRITE_OPS = _words("INSERT UPDATE DELETE REPLACE MERGE UPSERT")
_SCHEMA_WORDS = _words("CREATE DROP ALTER TRUNCATE")
# Object types whose name goes into a schema statement's summary (others: type only).
_NAMED_OBJECTS = _words("TABLE VIEW INDEX TRIGGER SEQUENCE")
_SCHEMA_MODIFIERS = _words(
    "OR REPLACE UNIQUE TEMP TEMPORARY UNLOGGED MATERIALIZED VIRTUAL GLOBAL LOCAL RECURSIVE "
    "FOREIGN CONSTRAINT"
)
# Previous tokens after which INSERT/UPDATE/DELETE/REPLACE/MERGE start a (sub)statement.
_STATEMENT_START_AFTER = _words("( ) ; BEGIN EXPLAIN PLAN ANALYZE VERBOSE")
# Words that end a FROM list: after them a comma no longer introduces a table.
_FROM_LIST_END = _words(
    "WHERE GROUP ORDER HAVING LIMIT OFFSET FETCH WINDOW UNION INTERSECT EXCEPT RETURNING "
    "SET VALUES FOR SELECT"
)
# Words that can never be a table name where one is expected.
_NOT_A_NAME = _words(
    "SELECT WITH VALUES WHERE SET ON USING GROUP ORDER LIMIT HAVING UNION INTERSECT EXCEPT "
    "NATURAL LEFT RIGHT INNER OUTER FULL CROSS JOIN AS WINDOW RETURNING OFFSET FETCH FOR "
    "DEFAULT INTO FROM STDIN STDOUT NULL NOT EXISTS CASE WHEN THEN ELSE END AND OR"
)
# Words before "(" that make it a subquery or a list, not a function call.
_CLAUSE_WORDS = (
    _NOT_A_NAME
    | _STATEMENT_WORDS
    | _words(
        "IN ANY ALL SOME LATERAL MATERIALIZED JOIN TABLE INDEX CONFLICT KEY CHECK UNIQUE "
        "REFERENCES PLAN"
    )
)

_NONE, _EXPECT_TABLE, _EXPECT_INTO, _EXPECT_CTE = range(4)


def _is_name(token: _Token) -> bool:
    kind = token[0]
    return kind == _QUOTED or (kind == _WORD and token[2] not in _NOT_A_NAME)


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


def _read_name(tokens: list[_Token], i: int) -> tuple[str, str, int]:
    """A dotted name at ``i``: (name without quotes, name as shown in a summary, next index)."""
    clean: list[str] = []
    shown: list[str] = []
    n = len(tokens)
    while True:
        kind, raw, _, _ = tokens[i]
        if kind == _QUOTED:
            part = _unquote(raw)
            clean.append(part)
            shown.append(part if _PLAIN_NAME.fullmatch(part) else raw)
        else:
            clean.append(raw)
            shown.append(raw)
        i += 1
        if (
            i + 1 < n
            and tokens[i][2] == "."
            and not tokens[i][3]
            and tokens[i + 1][0] in (_WORD, _QUOTED)
        ):
            i += 1
            continue
        return ".".join(clean), ".".join(shown), i


@dataclass(slots=True)
class _Statement:
    operation: str
    collection: str | None
    summary: str
    is_write: bool


@dataclass(slots=True)
class _Frame:
    function: bool = False
    from_list: bool = False
    cte_body: bool = False


class _Scan:
    """Walks a statement's tokens once, noting operations and tables in order."""

    __slots__ = ("copy_direction", "ctes", "items", "operations", "tables")

    def __init__(self) -> None:
        self.items: list[str] = []
        self.operations: list[tuple[int, str]] = []
        self.tables: list[tuple[int, str]] = []
        self.ctes: set[str] = set()
        self.copy_direction = ""

    def run(self, tokens: list[_Token], i: int, expect: int = _NONE, copy: bool = False) -> None:
        frames = [_Frame()]
        prev = ""
        cte_pending = after_cte = False
        n = len(tokens)
        while i < n:
            token = tokens[i]
            kind, _, upper, _ = token
            depth = len(frames) - 1
            if expect != _NONE:
                if kind == _WORD and upper in ("ONLY", "LATERAL", "RECURSIVE"):
                    i += 1
                    continue
                if _is_name(token):
                    clean, shown, i = _read_name(tokens, i)
                    if expect == _EXPECT_CTE:
                        self.ctes.add(clean.lower())
                        cte_pending = True
                    elif not (expect == _EXPECT_TABLE and i < n and tokens[i][2] == "("):
                        self._table(depth, clean, shown)
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
            if kind == _OP:
                if upper == "(":
                    function = prev not in _CLAUSE_WORDS and (prev[:1].isalpha() or prev[:1] == "_")
                    cte_body = cte_pending and prev in ("AS", "MATERIALIZED")
                    if cte_body:
                        cte_pending = False
                    frames.append(_Frame(function=function, cte_body=cte_body))
                elif upper == ")":
                    if len(frames) > 1:
                        after_cte = frames.pop().cte_body
                elif upper == "," and frame.from_list:
                    expect = _EXPECT_TABLE
            elif kind == _WORD:
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
                    if copy and depth == 0:
                        self.copy_direction = upper
                    elif upper == "FROM" and not frame.function:
                        expect = _EXPECT_TABLE
                        frame.from_list = True
                elif upper == "JOIN":
                    expect = _EXPECT_TABLE
                elif upper == "USING" and (i + 1 < n and tokens[i + 1][2] != "("):
                    expect = _EXPECT_TABLE
                    frame.from_list = True
                elif upper == "INTO" and not frame.function:
                    expect = _EXPECT_INTO
                elif upper == "WITH":
                    expect = _EXPECT_CTE
                elif upper in _FROM_LIST_END:
                    frame.from_list = False
            prev = upper if kind in (_WORD, _OP) else ("name" if kind == _QUOTED else "?")
            i += 1

    def _operation(self, depth: int, name: str) -> None:
        self.operations.append((depth, name))
        self.items.append(name)

    def _table(self, depth: int, clean: str, shown: str) -> None:
        if clean.lower() in self.ctes or len(clean) > MAX_NAME_CHARS:
            return
        self.tables.append((depth, clean))
        self.items.append(shown)

    def main_table(self) -> str | None:
        for depth, name in self.tables:
            if depth == 0:
                return name
        return self.tables[0][1] if self.tables else None


def _first_word(tokens: list[_Token]) -> int:
    """Index of the first token that is not an opening parenthesis."""
    for i, token in enumerate(tokens):
        if token[2] != "(":
            return i
    return len(tokens)


def _analyze(tokens: list[_Token]) -> _Statement:
    start = _first_word(tokens)
    if start >= len(tokens) or tokens[start][0] != _WORD:
        scan = _Scan()
        scan.run(tokens, 0)
        return _Statement("", scan.main_table(), _join_summary(scan.items), False)
    first = tokens[start][2]
    if first not in _STATEMENT_WORDS:
        return _Statement("", None, "", False)
    scan = _Scan()
    if first in ("SELECT", "INSERT", "UPDATE", "DELETE", "REPLACE", "MERGE", "WITH", "VALUES"):
        scan.run(tokens, 0)
        operation = first
        if first == "WITH":
            top = [name for depth, name in scan.operations if depth == 0]
            operation = top[0] if top else (scan.operations[0][1] if scan.operations else "")
        elif first == "VALUES":
            scan.items.insert(0, first)
        is_write = any(name in _WRITE_OPS for _, name in scan.operations)
        return _Statement(operation, scan.main_table(), _join_summary(scan.items), is_write)
    if first == "EXPLAIN":
        scan.items.append(first)
        scan.run(tokens, start + 1)
        return _Statement(first, scan.main_table(), _join_summary(scan.items), False)
    if first == "COPY":
        scan.items.append(first)
        scan.run(tokens, start + 1, expect=_EXPECT_INTO, copy=True)
        is_write = scan.copy_direction == "FROM"
        return _Statement(first, scan.main_table(), _join_summary(scan.items), is_write)
    if first in _SCHEMA_WORDS:
        return _analyze_schema(tokens, start, first)
    summary = first
    if first in ("PRAGMA", "CALL") and start + 1 < len(tokens) and _is_name(tokens[start + 1]):
        _, shown, _ = _read_name(tokens, start + 1)
        summary = _join_summary([first, shown])
    return _Statement(first, None, summary, False)


def _analyze_schema(tokens: list[_Token], start: int, first: str) -> _Statement:
    """``CREATE/DROP/ALTER/TRUNCATE [modifiers] [type] [IF [NOT] EXISTS] name ...``."""
    n = len(tokens)
    i = start + 1
    while i < n and tokens[i][0] == _WORD and tokens[i][2] in _SCHEMA_MODIFIERS:
        i += 1
    items = [first]
    object_type = ""
    if i < n and tokens[i][0] == _WORD and not (first == "TRUNCATE" and tokens[i][2] != "TABLE"):
        object_type = tokens[i][2]
        items.append(object_type)
        i += 1
    elif first == "TRUNCATE":
        object_type = "TABLE"
    while i < n and tokens[i][0] == _WORD and tokens[i][2] in ("IF", "NOT", "EXISTS", "ONLY"):
        i += 1
    if object_type == "INDEX" and i < n and tokens[i][2] == "CONCURRENTLY":
        i += 1
    collection = None
    if object_type in _NAMED_OBJECTS and i < n and _is_name(tokens[i]):
        clean, shown, i = _read_name(tokens, i)
        if len(clean) <= MAX_NAME_CHARS:
            items.append(shown)
            if object_type in ("TABLE", "VIEW"):
                collection = clean
        if object_type in ("INDEX", "TRIGGER"):
            for j in range(i, n - 1):
                if tokens[j][2] == "ON" and _is_name(tokens[j + 1]):
                    target, _, _ = _read_name(tokens, j + 1)
                    if len(target) <= MAX_NAME_CHARS:
                        collection = target
                    break
    scan = _Scan()
    scan.items = items
    scan.run(tokens, i)
    if collection is None:
        collection = scan.main_table()
    return _Statement(first, collection, _join_summary(scan.items), False)


def _join_summary(items: list[str]) -> str:
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


def parse_sql(sql: str) -> SqlInfo:
    """Operation, main table, summary and sanitized text of ``sql``. Never raises."""
    try:
        return _parse(sql)
    except Exception:
        return EMPTY


def _parse(sql: str) -> SqlInfo:
    if not isinstance(sql, str):
        sql = bytes(sql).decode("utf-8", "replace") if isinstance(sql, bytes | bytearray) else ""
    statements = _split_statements(_tokenize(sql[:MAX_SCAN_CHARS]))
    if not statements:
        return EMPTY
    texts: list[str] = []
    length = 0
    for tokens in statements:
        if length > MAX_TEXT_CHARS:
            break
        text = _sanitize(tokens, MAX_TEXT_CHARS - length)
        texts.append(text)
        length += len(text) + 2
    sanitized = _valid_unicode("; ".join(texts)[:MAX_TEXT_CHARS])
    parsed = [_analyze(tokens) for tokens in statements]
    if len(parsed) == 1:
        one = parsed[0]
        return SqlInfo(
            operation=one.operation,
            collection=_valid_unicode(one.collection) if one.collection else None,
            summary=_valid_unicode(one.summary),
            sanitized=sanitized,
            is_write=one.is_write,
            statements=1,
        )
    return _batch(parsed, sanitized)


def _batch(parsed: list[_Statement], sanitized: str) -> SqlInfo:
    work = [s for s in parsed if s.operation not in _TRANSACTION_WORDS] or parsed
    operations = {s.operation for s in work}
    collections = {s.collection for s in work}
    summaries = {s.summary for s in work}
    operation = "BATCH"
    if len(operations) == 1 and "" not in operations:
        operation = "BATCH " + operations.pop()
    summary = "BATCH"
    if len(summaries) == 1 and "" not in summaries:
        summary = _join_summary(["BATCH", *summaries.pop().split(" ")])
    collection = collections.pop() if len(collections) == 1 else None
    return SqlInfo(
        operation=operation,
        collection=_valid_unicode(collection) if collection else None,
        summary=_valid_unicode(summary),
        sanitized=sanitized,
        is_write=any(s.is_write for s in parsed),
        statements=len(parsed),
    )


def _valid_unicode(text: str) -> str:
    """Lone surrogates would make the exporter fail to encode the attribute."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text
