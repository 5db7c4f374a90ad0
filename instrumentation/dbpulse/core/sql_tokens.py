"""The SQL tokenizer and sanitizer behind :func:`dbpulse.core.sql.parse_sql`.

Tokens are ``(kind, text, upper-cased text for words else text, whitespace before)``; the
sanitizer replaces every literal token with ``?`` and collapses ``IN`` lists and repeated
``VALUES`` rows (see :mod:`dbpulse.core.sql` for the rules).
"""

from __future__ import annotations

import re

__all__ = [
    "KIND_OP",
    "KIND_QUOTED",
    "KIND_WORD",
    "PLAIN_NAME",
    "Token",
    "mark_values",
    "sanitize",
    "split_statements",
    "tokenize",
    "words",
]

KIND_WORD, KIND_QUOTED, _LITERAL, _PARAM, KIND_OP = range(5)

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
    |(?P<num>0[xXoObB]\w*|(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d[\d_]*)?\w*)
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
# A SQLite [bracket name]; "[1, 2]", "[]" and "['a']" are lists or subscripts (DuckDB, PostgreSQL).
_BRACKET_IDENT = re.compile(r"\[(?![\d.+\-\]])[^\]\['\",\n]*\]")
_LITERAL_LIKE = re.compile(r"['@\n]")
_COMMENT_MARK = re.compile(r"/\*|\*/")
PLAIN_NAME = re.compile(r"[^\W\d][\w$]*")

_KIND = {
    "str": _LITERAL,
    "dollar": _LITERAL,
    "num": _LITERAL,
    "dquote": KIND_QUOTED,
    "btick": KIND_QUOTED,
    "param": _PARAM,
    "word": KIND_WORD,
    "cast": KIND_OP,
    "op": KIND_OP,
    "other": KIND_OP,
}

# A token: (kind, text, upper-cased text for words else text, whitespace before it).
Token = tuple[int, str, str, bool]


def words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words after which "[" opens a SQLite bracket-quoted name rather than a PostgreSQL subscript.
_BRACKET_AFTER = words(
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


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    append = tokens.append
    match = _TOKEN.match
    pos, end, space = 0, len(text), False
    last_close = text.rfind("]")  # one search, not one per "[" (quadratic on "[[[[...]")
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
        if raw == "[":
            if last_close < start:  # unterminated: hide everything after it
                append((_LITERAL, text[start:], "?", space))
                break
            bracket = _BRACKET_IDENT.match(text, start) if _opens_bracket_name(tokens) else None
            if bracket is not None:
                raw = bracket.group()
                pos = bracket.end()
                append((KIND_QUOTED, raw, raw, space))
                space = False
                continue
        kind = _KIND[group]
        if kind == KIND_QUOTED and (not _is_terminated(raw) or _LITERAL_LIKE.search(raw)):
            # Unterminated: hide what it swallowed. With "'" or "@": more likely one of SQLite's
            # legacy double-quoted strings ("bob@example.com") than a name.
            kind = _LITERAL
        if kind == KIND_WORD:
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


def _opens_bracket_name(tokens: list[Token]) -> bool:
    if not tokens:
        return True
    kind, _, upper, _ = tokens[-1]
    if kind == KIND_WORD:
        return upper in _BRACKET_AFTER
    return kind == KIND_OP and upper not in (")", "]")


def split_statements(tokens: list[Token]) -> list[list[Token]]:
    """Split at ``;``, except inside parentheses (PostgreSQL's ``CREATE RULE ... DO (a; b)``)
    and the ``BEGIN ... END`` body of a ``CREATE TRIGGER`` or ``BEGIN ATOMIC`` function."""
    statements: list[list[Token]] = []
    current: list[Token] = []
    block = parens = 0
    for token in tokens:
        kind, _, upper, _ = token
        if kind == KIND_OP:
            if upper == ";" and block == 0 and parens == 0:
                if current:
                    statements.append(current)
                current = []
                continue
            if upper == "(":
                parens += 1
            elif upper == ")" and parens:
                parens -= 1
        if kind == KIND_WORD and current and current[0][2] == "CREATE":
            if upper == "BEGIN" or (upper == "CASE" and block):
                block += 1
            elif upper == "END" and block:
                block -= 1
        current.append(token)
    if current:
        statements.append(current)
    return statements


# --- values that look like names -------------------------------------------------------------

# After these, the next token stands where a value goes ("a = x", "a || x", "{k: x}").
_VALUE_OPS = frozenset("= < > ! + - / % | & ^ ~ :".split())
_VALUE_WORDS = words(
    "LIKE ILIKE GLOB REGEXP MATCH SIMILAR ESCAPE IS THEN ELSE WHEN DEFAULT LIMIT OFFSET BETWEEN "
    "INTERVAL"
)
_OPEN = frozenset("([{")
_CLOSE = frozenset(")]}")
_SUBQUERY_WORDS = words("SELECT WITH VALUES")
# In SET (and ALTER ... SET), the words after these are the setting's value.
_SET_VALUE_AFTER = words("= TO")
_SET_VALUE_WORDS = words("ROLE AUTHORIZATION ZONE")
# Statements where bare words can be values.
_BARE_VALUE_STATEMENTS = words("SET ALTER PRAGMA")
# Statements whose file name or key follows these words: ATTACH "x.db", VACUUM INTO "x.db".
_FILE_WORDS = {"ATTACH": words("ATTACH DATABASE KEY"), "VACUUM": words("INTO")}


def mark_values(tokens: list[Token]) -> None:
    """Make literals of the quoted tokens that stand where a value goes, in place.

    SQLite reads ``"bob"`` as a string when no column has that name, so a double-quoted (or
    other quoted) token is a value: after a comparison or arithmetic operator, after ``LIKE``,
    ``IS``, ``THEN``, ``ELSE``, ``WHEN``, ``DEFAULT``, ``LIMIT``, ``BETWEEN ... AND``, and
    anywhere inside a ``VALUES`` row, an ``IN (...)`` list, a ``[...]`` list or ``{...}``
    struct, the arguments of a function called in such a position, or a ``PRAGMA``'s argument;
    except when it is qualified (``"t"."c"``, ``excluded."c"``); also the file name and key
    of ``ATTACH`` and ``VACUUM INTO``. In ``PRAGMA x = v``,
    ``PRAGMA x(v)`` and ``SET x = v`` / ``SET x TO v`` bare words are values too."""
    n = len(tokens)
    start = 0
    while start < n and tokens[start][2] == "(":
        start += 1
    first = tokens[start][2] if start < n else ""
    if first not in _BARE_VALUE_STATEMENTS and all(t[0] != KIND_QUOTED for t in tokens):
        return  # nothing to change: the common case, kept cheap
    settable = first == "SET" or first == "ALTER"
    set_seen = first == "SET"
    pragma = first == "PRAGMA"
    file_words = _FILE_WORDS.get(first)
    bare_values = between = value_pos = value_word = False
    stack = [False]  # per open bracket: is it a value group
    rows_depth = -1  # the depth where "VALUES (...), (...)" rows go on after ","
    prev = ""
    for i in range(n):
        kind, raw, upper, space = tokens[i]
        depth = len(stack) - 1
        in_group = stack[-1]
        next_value = next_word = False
        if (
            (kind == KIND_QUOTED or (kind == KIND_WORD and bare_values and upper != "DEFAULT"))
            and (value_pos or in_group or bare_values)
            and not _qualified(tokens, i, prev)
        ):
            tokens[i] = (_LITERAL, raw, "?", space)
            kind = _LITERAL
        if kind == KIND_OP:
            if upper in _OPEN:
                after = tokens[i + 1][2] if i + 1 < n else ""
                group = after not in _SUBQUERY_WORDS and (
                    in_group
                    or upper != "("
                    or value_pos
                    or value_word
                    or prev == "VALUES"
                    or prev == "IN"
                    or (prev == "," and rows_depth == depth)
                    or (pragma and depth == 0)
                )
                if prev == "VALUES":
                    rows_depth = depth
                if pragma and depth == 0:
                    bare_values = True
                stack.append(group)
                next_value = group
            elif upper in _CLOSE:
                if depth:
                    stack.pop()
            elif upper == ",":
                next_value = in_group
            elif upper in _VALUE_OPS:
                next_value = True
                if depth == 0 and ((pragma and upper == "=") or (set_seen and upper == "=")):
                    bare_values = True
        elif kind == KIND_WORD:
            if depth == rows_depth and upper != "VALUES":
                rows_depth = -1
            if upper in _VALUE_WORDS or (file_words is not None and upper in file_words):
                next_value = True
                between = between or upper == "BETWEEN"
            elif upper == "AND" and between:
                next_value, between = True, False
            elif upper == "NOT" and value_pos:
                next_value = True
            else:
                next_word = value_pos or in_group
            if depth == 0 and settable:
                if upper == "SET":
                    set_seen = True
                elif set_seen and (
                    upper in _SET_VALUE_AFTER or (first == "SET" and upper in _SET_VALUE_WORDS)
                ):
                    bare_values = True
        value_pos, value_word = next_value, next_word
        prev = upper


def _qualified(tokens: list[Token], i: int, prev: str) -> bool:
    """``"t"."c"``, ``excluded."c"``: a name, whatever the position."""
    after = tokens[i + 1] if i + 1 < len(tokens) else None
    return prev == "." or (after is not None and after[2] == "." and not after[3])


# --- sanitized text --------------------------------------------------------------------------


def _is_single_value(token: Token) -> bool:
    return token[0] == _LITERAL or (token[0] == _PARAM and token[1] == "?")


def _collapsible_in_list(tokens: list[Token], i: int) -> int:
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


def _group_end(tokens: list[Token], i: int) -> int:
    """Index after the parenthesized group opened at ``i``."""
    depth = 0
    for j in range(i, len(tokens)):
        text = tokens[j][2]
        if tokens[j][0] == KIND_OP:
            if text == "(":
                depth += 1
            elif text == ")":
                depth -= 1
                if depth == 0:
                    return j + 1
    return len(tokens)


def sanitize(tokens: list[Token], limit: int, rows: bool = True) -> str:
    """The sanitized text of ``tokens``, about ``limit`` characters at most; ``rows=False``
    inside a ``VALUES`` row, so that nested ``VALUES`` are not collapsed again (linear)."""
    parts: list[str] = []
    length = 0
    i, n = 0, len(tokens)
    while i < n and length <= limit:
        kind, raw, upper, space = tokens[i]
        piece = "?" if kind == _LITERAL else raw
        if parts and space:
            parts.append(" ")
            length += 1
        if kind == KIND_WORD and upper == "IN":
            after = _collapsible_in_list(tokens, i + 1)
            if after:
                piece = raw + (" (?)" if tokens[i + 1][3] else "(?)")
                i = after - 1
        elif (
            rows
            and kind == KIND_WORD
            and upper == "VALUES"
            and i + 1 < n
            and tokens[i + 1][2] == "("
        ):
            piece, i = _sanitize_values(tokens, i, limit)
            i -= 1
        parts.append(piece)
        length += len(piece)
        i += 1
    return "".join(parts)


def _sanitize_values(tokens: list[Token], i: int, limit: int) -> tuple[str, int]:
    """``VALUES (row), (row), ...`` with runs of identical rows shown once, then ``, ...``."""
    out = [tokens[i][1], " "]
    previous, repeated, first = None, False, True
    j, n = i + 1, len(tokens)
    while j < n and tokens[j][2] == "(":
        end = _group_end(tokens, j)
        row = "(" + sanitize(tokens[j + 1 : end - 1], limit, rows=False) + ")"
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
