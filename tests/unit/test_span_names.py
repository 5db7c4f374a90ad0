"""Span names follow the stable database conventions: ``{db.query.summary}`` when there is a
summary, else ``{db.operation.name} {target}``, else the operation."""

from __future__ import annotations

import pytest

from dbpulse.core.statements import Statement


@pytest.mark.parametrize(
    ("sql", "name"),
    [
        ("INSERT INTO books (isbn) VALUES (?)", "INSERT books"),
        ("SELECT * FROM books JOIN authors ON books.author = authors.id", "SELECT books authors"),
        ("INSERT INTO archive SELECT * FROM books", "INSERT archive SELECT books"),
        ("CREATE TABLE books (isbn TEXT)", "CREATE TABLE books"),
        ("SELECT 1", "SELECT"),
        ("BEGIN", "BEGIN"),
    ],
)
def test_a_sql_span_is_named_by_its_summary(sql: str, name: str):
    stmt = Statement(sql, None)
    assert stmt.span_name == name
    assert stmt.summary == name


def test_the_name_is_bounded_with_the_summary():
    tables = ", ".join(f"table_number_{i}" for i in range(100))
    stmt = Statement(f"SELECT * FROM {tables}", None)
    assert stmt.span_name == stmt.summary
    assert 0 < len(stmt.span_name) <= 255


@pytest.mark.parametrize(
    ("operation", "collection", "name"),
    [("GET", None, "GET"), ("BATCH SET", None, "BATCH SET"), ("XADD", "stream", "XADD stream")],
)
def test_statements_described_directly_are_named_the_same_way(operation, collection, name):
    stmt = Statement.of(operation, operation, is_write=False, collection=collection)
    assert stmt.span_name == stmt.summary == name
