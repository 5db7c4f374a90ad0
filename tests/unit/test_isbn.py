"""ISBN entity keys: what a user sees on spans and in the write-by-ISBN metric.

Per-call costs of ``IsbnExtractor.from_params`` measured with timeit (CPython 3.11, 2 cores
shared with other jobs at load average 5-9, so these are upper bounds; best of 7)::

    None                                               0.07-0.09 µs
    (1, "title", 2.5, None)                            0.27 µs
    (1, "The Art of Computer Programming", 2.5, None, True, "en")   0.39 µs
    5-tuple, one ISBN-13 str or int seen recently      0.55-0.87 µs
    5-tuple, one ISBN-13 str never seen before         1.7-2.5 µs (0.4 of it the check digit)
    JSON text with two ISBNs, seen / new               0.41 µs / 9-14 µs (json.loads)
    60-character text without ISBN, new                2.3-3 µs

``from_sql`` (once per distinct statement text): Calibre INSERT 7-12 µs, placeholders only
2.4 µs, 64 KiB without literals 1.8 ms, a 64 KiB INSERT of 1800 rows 11 ms.
"""

from __future__ import annotations

import enum
import json
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbpulse.core.entities import MAX_KEYS, MAX_TEXT, IsbnExtractor
from dbpulse.core.isbn import normalize_isbn
from tests.unit.isbn_corpus import PARAM_CASES, SQL_CASES, A, B, C

EXTRACTOR = IsbnExtractor()


# --- reference implementation, written plainly --------------------------------------------


def ref_valid13(digits: str) -> bool:
    if len(digits) != 13 or not digits.isascii() or not digits.isdigit():
        return False
    if digits[:3] not in ("978", "979") or digits[:4] == "9790":
        return False
    total = sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(digits))
    return total % 10 == 0


def ref_check13(first12: str) -> str:
    total = sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(first12))
    return str((10 - total % 10) % 10)


def ref_check10(first9: str) -> str:
    total = sum(int(c) * (10 - i) for i, c in enumerate(first9))
    check = (11 - total % 11) % 11
    return "X" if check == 10 else str(check)


def sql_insert(text: str) -> str:
    quoted = text.replace("'", "''")
    return f"INSERT INTO t VALUES ('{quoted}')"


def ref_to13(isbn10: str) -> str:
    core = "978" + isbn10[:9]
    return core + ref_check13(core)


# --- corpus ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "expected"), [c[1:] for c in SQL_CASES], ids=[c[0] for c in SQL_CASES]
)
def test_sql_corpus(sql: str, expected: tuple[str, ...]) -> None:
    assert EXTRACTOR.from_sql(sql) == expected


@pytest.mark.parametrize(
    ("params", "expected"), [c[1:] for c in PARAM_CASES], ids=[c[0] for c in PARAM_CASES]
)
def test_params_corpus(params: object, expected: tuple[str, ...]) -> None:
    assert EXTRACTOR.from_params(params) == expected
    # The second call is answered from the string cache: same answer.
    assert EXTRACTOR.from_params(params) == expected


def test_interface_names() -> None:
    assert EXTRACTOR.name == "isbn"
    assert EXTRACTOR.span_attribute == "book.isbn"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("978-0-306-40615-7", A),
        ("0-306-40615-2", A),
        ("0306406152", A),
        ("ISBN 0306406152", A),
        ("ISBN-13: 978-0-306-40615-7", A),
        ("isbn13 9780306406157", A),
        ("ISBN-10: 0-8044-2957-X", B),
        ("080442957x", B),
        ("978\u20100\u2010306\u201040615\u20107", A),  # Unicode hyphens
        (9780306406157, A),
        (9780306406157.0, A),
        (b"9781234567897", C),
        ("9780000000TEST", None),
        ("9780306406158", None),
        ("555-123-4567", None),
        ("97-80306-40615-7", A),
        ("978-0-306-40615-7-1", None),
        ("9780306406157 9781234567897", None),  # two ISBNs are not one value
        (306406152, None),  # ISBN-10 as int: see the module notes
        (True, None),
        (None, None),
        (9780306406157.5, None),
        (float("nan"), None),
        ("", None),
        ("\u0669" * 13, None),  # Arabic-Indic digits are digits, but not ISBN digits
    ],
)
def test_normalize_isbn(value: object, expected: str | None) -> None:
    assert normalize_isbn(value) == expected


def test_int_and_str_subclasses() -> None:
    class Isbns(enum.IntEnum):
        SIGNAL = 9780306406157

    class Text(str):
        def __eq__(self, other: object) -> bool:
            raise RuntimeError("broken __eq__")

        __hash__ = str.__hash__

    assert normalize_isbn(Isbns.SIGNAL) == A
    assert normalize_isbn(Text("0-306-40615-2")) == A
    assert EXTRACTOR.from_params((Isbns.SIGNAL, Text("ISBN 080442957X"))) == (A, B)


def test_psycopg_json_wrapper() -> None:
    json_types = pytest.importorskip("psycopg.types.json")
    params = (json_types.Jsonb({"isbn": "0306406152", "more": [9781234567897]}), 1)
    assert EXTRACTOR.from_params(params) == (A, C)


def test_iterators_are_not_consumed() -> None:
    rows = iter(["9780306406157", "x"])
    assert EXTRACTOR.from_params(rows) == ()
    assert next(rows) == "9780306406157"

    def gen():
        yield "9780306406157"

    g = gen()
    assert EXTRACTOR.from_params(g) == ()
    assert list(g) == ["9780306406157"]


def test_keys_are_capped() -> None:
    isbns = [f"978{n:09d}" for n in range(300)]
    isbns = [core + ref_check13(core) for core in isbns]
    assert len(set(isbns)) == 300
    assert EXTRACTOR.from_params(tuple(isbns)) == tuple(isbns[:MAX_KEYS])
    assert EXTRACTOR.from_params((json.dumps(isbns),)) == tuple(isbns[:MAX_KEYS])
    assert EXTRACTOR.from_params((" ".join(isbns),)) == tuple(isbns[:MAX_KEYS])
    values = ", ".join(f"('{isbn}')" for isbn in isbns)
    assert EXTRACTOR.from_sql(f"INSERT INTO t VALUES {values}") == tuple(isbns[:MAX_KEYS])


def test_size_bounds() -> None:
    padding = "x" * MAX_TEXT
    # A parameter string over the bound is ignored whole.
    assert EXTRACTOR.from_params((A + " " + padding,)) == ()
    assert EXTRACTOR.from_params((A + " " + padding[: MAX_TEXT - 20],)) == (A,)
    # SQL is read up to the bound: literals before it count, a literal cut by it does not.
    sql = f"INSERT INTO t VALUES ('{A}', '{padding}', '{C}')"
    assert EXTRACTOR.from_sql(sql) == (A,)
    # Blobs are not read.
    assert EXTRACTOR.from_params((A.encode() + b" " * 40,)) == ()


def test_huge_and_pathological_inputs_are_fast_enough_and_safe() -> None:
    # Runs of separated digits used to make regex scanners backtrack quadratically.
    for text in ("1 " * 30000 + "a", "1-" * 30000 + "x", "9" * 60000 + "Xa", "[" * 60000):
        assert EXTRACTOR.from_params((text,)) == ()
        assert EXTRACTOR.from_sql(f"SELECT '{text}'") == ()
    deep = "[" * 50000 + "]" * 50000  # > MAX_TEXT: ignored; below it, json.loads recursion
    assert EXTRACTOR.from_params((deep,)) == ()
    assert EXTRACTOR.from_params(("[" * 30000 + "]" * 30000,)) == ()
    assert EXTRACTOR.from_sql("'" * 100001) == ()
    assert EXTRACTOR.from_sql("$$" + "1" * 100000) == ()
    assert EXTRACTOR.from_params(("x" * 10_000_000,)) == ()
    # JSON encoded in JSON strings again and again: two levels are decoded, the rest is text.
    document: object = {"isbn": A}
    for _ in range(10):
        document = [json.dumps(document)]
    assert EXTRACTOR.from_params((json.dumps(document),)) == (A,)


# --- objects that misbehave -----------------------------------------------------------------


class Broken:
    def __str__(self) -> str:
        raise RuntimeError("__str__")

    __repr__ = __str__

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("__eq__")

    def __hash__(self) -> int:
        raise RuntimeError("__hash__")

    def __len__(self) -> int:
        raise RuntimeError("__len__")

    def __iter__(self):
        raise RuntimeError("__iter__")

    def __getattr__(self, name: str) -> object:
        raise RuntimeError(name)


class BrokenList(list):
    def __iter__(self):
        raise RuntimeError("__iter__")

    def __len__(self) -> int:
        raise RuntimeError("__len__")


class BrokenDict(dict):
    def values(self):
        raise RuntimeError("values")

    def __iter__(self):
        raise RuntimeError("__iter__")


class BrokenFloat(float):
    def __lt__(self, other: object) -> bool:
        raise RuntimeError("__lt__")

    __le__ = __ge__ = __gt__ = __lt__


def test_broken_objects_do_not_raise_and_do_not_hide_other_keys() -> None:
    odd = (Broken(), BrokenList([A]), BrokenDict(a=A), BrokenFloat(9780306406157.0), C)
    assert EXTRACTOR.from_params(odd) == (A, C)
    assert EXTRACTOR.from_params(Broken()) == ()
    assert EXTRACTOR.from_params(BrokenList([A])) == ()
    assert EXTRACTOR.from_params(BrokenDict(a=A)) == ()
    assert EXTRACTOR.from_sql(Broken()) == ()  # type: ignore[arg-type]
    assert normalize_isbn(Broken()) is None
    assert normalize_isbn(BrokenFloat(9780306406157.0)) == A


# --- properties -----------------------------------------------------------------------------

digits = st.text("0123456789", min_size=1, max_size=1)


@st.composite
def isbn13s(draw: st.DrawFn) -> str:
    prefix = draw(st.sampled_from(["978", "979"]))
    first = draw(st.sampled_from("0123456789" if prefix == "978" else "123456789"))
    core = prefix + first + draw(st.text("0123456789", min_size=8, max_size=8))
    return core + ref_check13(core)


@st.composite
def isbn10s(draw: st.DrawFn) -> str:
    first9 = draw(st.text("0123456789", min_size=9, max_size=9))
    check = ref_check10(first9)
    if check == "X" and draw(st.booleans()):
        check = "x"
    return first9 + check


@st.composite
def grouped(draw: st.DrawFn, isbn: str) -> str:
    """The ISBN as printed: compact, or in groups with the check character alone at the end."""
    style = draw(st.sampled_from(["compact", "groups", "prefix"]))
    if style == "compact":
        return isbn
    sep = draw(st.sampled_from(["-", " ", "\u2010"]))
    if style == "prefix" and len(isbn) == 13:
        return isbn[:3] + sep + isbn[3:]
    body = isbn[:-1]
    cuts = sorted(
        draw(st.sets(st.integers(1, len(body) - 1), max_size=3 if len(isbn) == 13 else 2))
    )
    parts = [body[i:j] for i, j in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    return sep.join([*parts, isbn[-1]])


@st.composite
def printed_isbns(draw: st.DrawFn) -> tuple[str, str]:
    """(printed form, expected ISBN-13)."""
    if draw(st.booleans()):
        isbn = draw(isbn13s())
        expected = isbn
    else:
        isbn = draw(isbn10s())
        expected = ref_to13(isbn)
    return draw(grouped(isbn)), expected


labels = st.sampled_from(["", "ISBN ", "ISBN: ", "ISBN-13: ", "isbn10 ", "ISBN"])
prose = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


@given(printed_isbns(), labels)
def test_whole_values_normalise(printed: tuple[str, str], label: str) -> None:
    text, expected = printed
    assert normalize_isbn(label + text) == expected
    assert EXTRACTOR.from_params((1, label + text, None)) == (expected,)
    assert EXTRACTOR.from_params({"isbn": label + text}) == (expected,)
    assert EXTRACTOR.from_sql(f"INSERT INTO t VALUES (1, '{label}{text}')") == (expected,)


@given(printed_isbns(), prose, prose, st.sampled_from(["ISBN ", "ISBN-10: ", "isbn: "]))
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_found_in_free_text_and_json(
    printed: tuple[str, str], before: str, after: str, label: str
) -> None:
    text, expected = printed
    # "|" keeps digits in the surrounding text from joining the ISBN's run of groups.
    sentence = f"{before} | {label}{text} | {after}"
    assert expected in EXTRACTOR.from_params((sentence,))
    assert expected in EXTRACTOR.from_sql(sql_insert(sentence))
    document = json.dumps({"notes": before, "book": {"ids": [after, text]}})
    assert expected in EXTRACTOR.from_params((document, 1))
    assert expected in EXTRACTOR.from_sql(sql_insert(document))
    assert expected in EXTRACTOR.from_params(([before, text], {"k": after}))


@given(isbn13s())
def test_isbn13_as_int_and_numeric_literal(isbn: str) -> None:
    assert normalize_isbn(int(isbn)) == isbn
    assert EXTRACTOR.from_params((int(isbn),)) == (isbn,)
    assert EXTRACTOR.from_sql(f"UPDATE t SET n = 1 WHERE isbn = {isbn}") == (isbn,)


@given(isbn10s())
def test_isbn10_and_its_isbn13_are_one_key(isbn10: str) -> None:
    isbn13 = ref_to13(isbn10)
    assert normalize_isbn(isbn10) == normalize_isbn(isbn13) == isbn13
    assert normalize_isbn(normalize_isbn(isbn10)) == isbn13
    assert EXTRACTOR.from_params((isbn10, isbn13)) == (isbn13,)


@given(st.text("0123456789", min_size=13, max_size=13))
def test_thirteen_digits_agree_with_reference(value: str) -> None:
    expected = value if ref_valid13(value) else None
    assert normalize_isbn(value) == expected
    assert normalize_isbn(int(value)) == expected


@given(st.text("0123456789", min_size=9, max_size=9), st.sampled_from("0123456789Xx"))
def test_ten_characters_agree_with_reference(first9: str, check: str) -> None:
    valid = ref_check10(first9) == check.upper()
    assert normalize_isbn(first9 + check) == (ref_to13(first9 + check) if valid else None)


def weird_objects() -> st.SearchStrategy[object]:
    # Built at draw time: hypothesis reprs the strategy's elements, and Broken's repr raises.
    makers = [Broken, lambda: BrokenList([A]), lambda: BrokenDict(a=A), lambda: BrokenFloat(1.5)]
    return st.one_of(
        st.sampled_from(makers).map(lambda make: make()),
        st.sampled_from([object(), sys, int, ...]),
    )


json_documents = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(), st.text(), isbn13s(), isbn10s()
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=13), inner, max_size=5)
    ),
    max_leaves=20,
).map(json.dumps)
# Cut short or spliced: malformed JSON that still starts like JSON.
malformed_json = st.tuples(json_documents, st.integers(0, 200), st.text(max_size=5)).map(
    lambda t: t[0][: t[1]] + t[2]
)

scalars = st.one_of(
    json_documents,
    malformed_json,
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(),
    st.binary(),
    st.binary().map(bytearray),
    st.binary().map(memoryview),
    st.text('0123456789-X ISBN:{}[]",', max_size=60),
    isbn13s(),
    isbn10s(),
    weird_objects(),
)
params = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.lists(inner, max_size=5).map(tuple),
        st.dictionaries(st.text(max_size=5), inner, max_size=5),
    ),
    max_leaves=20,
)


def assert_keys(keys: object) -> None:
    assert type(keys) is tuple
    assert len(keys) <= MAX_KEYS
    assert len(set(keys)) == len(keys)
    for key in keys:
        assert type(key) is str and ref_valid13(key)


@given(params)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_from_params_never_raises(value: object) -> None:
    assert_keys(EXTRACTOR.from_params(value))
    assert_keys(EXTRACTOR.from_params((value,)))
    assert_keys(EXTRACTOR.from_params({"p": value}))
    result = normalize_isbn(value)
    assert result is None or ref_valid13(result)


@given(st.one_of(st.text(), st.text("'\"$`-/*E 0123456789X\\\n;()ISBN,{}[]:", max_size=200)))
def test_from_sql_never_raises(sql: str) -> None:
    assert_keys(EXTRACTOR.from_sql(sql))


@given(st.binary(max_size=200))
def test_non_utf8_bytes_never_raise(data: bytes) -> None:
    text = data.decode("utf-8", "surrogateescape")  # lone surrogates: not encodable text
    assert_keys(EXTRACTOR.from_params((data, text, memoryview(data))))
    assert_keys(EXTRACTOR.from_sql(text))
    assert_keys(EXTRACTOR.from_sql(f"SELECT '{text}'"))
