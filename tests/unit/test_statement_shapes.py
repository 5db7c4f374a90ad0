"""Texts of one shape share one parse (``dbpulse.core.statements``): SQL built with its values
inlined (``WHERE id = 42``) is looked up by its shape, literals replaced, so each new value
costs a regular expression, not a parse. That is only right if every text of a shape parses
exactly as its own parse would: checked here on the reference corpora (generated and
real-world-shaped statements, both dialects), each with its literals changed to other values.
"""

from __future__ import annotations

import random
import re

import pytest

from dbpulse.core import statements
from dbpulse.core.state import STATE
from dbpulse.core.statements import Statement, clear_statement_cache, statement
from tests.unit.test_sql_reference import _postgres_corpus, _sqlite_corpus

_NUMBER = re.compile(r"(?<![\w.])[0-9]+(?:\.[0-9]+)?(?![\w.])")
_STRING = re.compile(r"'(?:[^']|'')*'")
_FIELDS = (
    "operation",
    "collection",
    "summary",
    "text",
    "fingerprint",
    "is_write",
    "span_name",
    "returning",
    "behind_cte",
    "conflict_fail",
    "literal_keys",
)


def _other_values(sql: str, rng: random.Random) -> str:
    """``sql`` with each plain number and string literal changed (an ISBN now and then)."""
    sql = _NUMBER.sub(lambda m: str(rng.randrange(10**6)), sql)
    choices = ["'x'", "'it''s'", "'9780306406157'", "'a;b'", "'FROM t'", "''", "'RETURNING'"]
    return _STRING.sub(lambda m: rng.choice(choices), sql)


def _fields(stmt: Statement) -> dict[str, object]:
    return {name: getattr(stmt, name) for name in _FIELDS}


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_every_text_of_a_shape_parses_as_its_own_parse_would(dialect: str) -> None:
    corpus = _postgres_corpus() if dialect == "postgresql" else _sqlite_corpus()
    rng = random.Random(7)
    clear_statement_cache()
    shapes = statements.statement_cache(dialect + "\x00shapes")
    shared = checked = 0
    for sql in corpus:
        for text in (sql, _other_values(sql, rng), _other_values(sql, rng)):
            known = _shape_of(text) in shapes
            got = statement(dialect, text)
            own = Statement(text, STATE.extractor)  # the text's own, full parse
            assert _fields(got) == _fields(own), text
            checked += 1
            shared += known
    print(f"\n{dialect}: {checked} texts, {shared} served by their shape's parse")
    assert shared > checked // 5  # the shape path is taken, not only the full parse


def _shape_of(text: str) -> str | None:
    if len(text) > statements.MAX_SHAPE_TEXT or statements._SHAPE_UNSAFE.search(text):
        return None
    return statements._LITERAL.sub("?", text)


def test_texts_the_shape_cannot_tell_get_their_own_parse() -> None:
    clear_statement_cache()
    # Numbered parameters, quoted names, comments: a text of these is parsed on its own.
    for text in ('SELECT "col 1" FROM t WHERE a = 1', "SELECT ?1, ?2", "SELECT $1 -- 5"):
        other = text.replace("1", "2")
        assert statement("sqlite", other).text == Statement(other, STATE.extractor).text
        assert statement("sqlite", text).text == Statement(text, STATE.extractor).text
