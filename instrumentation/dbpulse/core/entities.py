"""Entity keys: find ISBNs in SQL statements and their parameters.

Usage::

    >>> from dbpulse.core.entities import IsbnExtractor, normalize_isbn
    >>> isbn = IsbnExtractor()
    >>> isbn.from_sql("INSERT INTO identifiers VALUES (3, 'isbn', '0-306-40615-2')")
    ('9780306406157',)
    >>> isbn.from_params(("978-0-306-40615-7", "Signal Processing", 2.5, None))
    ('9780306406157',)
    >>> isbn.from_params({"doc": '{"identifiers": {"isbn10": "080442957X"}}'})
    ('9780804429573',)
    >>> normalize_isbn("ISBN-10: 0-306-40615-2")
    '9780306406157'

Every key is a normalised ISBN-13 (13 ASCII digits): an ISBN-10 gets the ``978`` prefix and a
recomputed check digit, so an ISBN-10 and its ISBN-13 are the same key. Results are
de-duplicated, in order of first appearance, at most :data:`MAX_KEYS` of them. Nothing here
raises: unexpected input gives ``()`` (or ``None`` from :func:`normalize_isbn`).

What counts as an ISBN
----------------------
* Check digits are always validated (ISBN-10 mod 11 with ``X``/``x`` for ten, ISBN-13 mod 10).
  An ISBN-13 starts ``978`` or ``979`` but not ``9790`` (that block is ISMN, printed music).
* Digits may be grouped by hyphens or spaces as printed (``978-0-306-40615-7``,
  ``0 306 40615 2``): a grouped number must end in a one-character check group, or be
  ``978-``/``979-`` followed by the other ten digits. Phone numbers (``555-123-4567``) and dates
  do not fit that shape. An ``ISBN``, ``ISBN-10:``, ``ISBN-13:`` label in front is accepted.
* **A whole value** (one string parameter, one SQL string literal, one JSON string or object
  key) may be any of these forms, including a bare ten-digit ISBN-10 (``0306406152``).
* **Integers** (int parameters, SQL numeric literals, JSON numbers, integral floats) count only
  as ISBN-13. An ISBN-10 stored as an integer has lost any leading zero and cannot hold an
  ``X``, and ten-digit integers are mostly Unix timestamps: one in eleven of them would pass the
  ISBN-10 check digit. ``9780306406157`` as an int is found; ``306406152`` is not.
* **Free text** (a longer string that is neither one ISBN nor JSON) is scanned for ISBN-13 in
  any form, and for ISBN-10 only when it shows it is one: grouped, ending in ``X``, or labelled
  ``ISBN``/``isbn10``/``"isbn": `` just before. A bare ten-digit number inside text is more often
  a timestamp or phone number than an ISBN. Digits glued to letters (``9780000000TEST``) are not
  a key.
* A string that starts with ``{`` or ``[`` is parsed as JSON and walked: object keys and string
  values as whole values, numbers as integers, JSON inside JSON strings one level deep.
* A bare ten-digit string standing alone cannot be told from an ISBN-10 by its digits: one in
  eleven such strings (a phone number typed without separators, say) passes the check.

Bounds
------
Parameter strings longer than :data:`MAX_TEXT` characters (64 KiB) are ignored, as are
``bytes``/``bytearray``/``memoryview`` parameters longer than 32 bytes (BLOBs; shorter ones are
read as ASCII and taken as a whole value). SQL text is scanned up to :data:`MAX_TEXT` characters.
Nested containers in parameters (PostgreSQL arrays as lists, ``psycopg`` ``Json``/``Jsonb``
wrappers) are followed :data:`MAX_DEPTH` levels deep and at most :data:`MAX_ITEMS` items each.
Other objects are ignored without calling any of their methods, and iterators are never
consumed. Results for recently seen strings of up to 512 characters (and ints in the ISBN-13
range) are kept in a dict of at most 4096 entries, cleared when full, so a repeated value costs
one lookup.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from itertools import islice
from typing import Any, Protocol

from dbpulse.core.isbn import (
    MAX13,
    MIN13,
    check13,
    float_key,
    int_key,
    normalize_isbn,
    normalize_str,
    scan_text,
    small_bytes,
)

__all__ = [
    "MAX_KEYS",
    "MAX_TEXT",
    "EntityExtractor",
    "IsbnExtractor",
    "normalize_isbn",
]

MAX_KEYS = 100
"""At most this many keys are returned from one call."""
MAX_TEXT = 64 * 1024
"""Parameter strings longer than this are ignored; SQL is scanned up to this length."""
MAX_DEPTH = 4
"""Nesting depth followed into container parameters."""
MAX_ITEMS = 1000
"""Items read from one container parameter."""

_CACHE: dict[str | int, tuple[str, ...]] = {}
_CACHE_SIZE = 4096
_CACHE_KEY_MAX = 512


class EntityExtractor(Protocol):
    """Finds entity keys (e.g. ISBNs) in a statement and its parameters. Must never raise."""

    name: str
    span_attribute: str

    def from_sql(self, sql: str) -> tuple[str, ...]:
        """Keys in the statement's literals; called once per distinct statement text."""
        ...

    def from_params(self, params: object) -> tuple[str, ...]:
        """Keys in one call's (or one executemany row's) parameters; the hot path."""
        ...


# --- strings, JSON --------------------------------------------------------------------------


def _json_keys(node: Any, out: dict[str, None], depth: int, nested: int = 1) -> None:
    """Keys in a decoded JSON value; ``nested``: how many JSON texts enclose it."""
    if len(out) >= MAX_KEYS or depth > 64:
        return
    kind = type(node)
    if kind is str:
        if len(node) >= 10:
            out.update(dict.fromkeys(_str_keys(node, nested)))
        return
    if kind is dict:
        for name, item in node.items():
            if len(name) >= 10:
                _add(out, normalize_str(name))
            _json_keys(item, out, depth + 1, nested)
    elif kind is list:
        for item in node:
            _json_keys(item, out, depth + 1, nested)
    elif kind is int:
        _add(out, int_key(node))
    elif kind is float:
        _add(out, float_key(node))


def _add(out: dict[str, None], key: str | None) -> None:
    if key is not None:
        out[key] = None


def _str_keys(text: str, nested: int = 0) -> tuple[str, ...]:
    """Keys in one string value: a whole ISBN, a JSON document, or free text.

    ``nested``: how many JSON texts enclose this string; JSON is decoded two levels deep.
    """
    key = normalize_str(text)
    if key is not None:
        return (key,)
    if text.isdigit() and text.isascii():
        # A bare number: normalize_str judged the whole run already, and the free-text scan
        # only ever reads whole runs (order numbers, barcodes: 6 µs -> 0.7 µs per new value).
        return ()
    out: dict[str, None] = {}
    head = text.lstrip()[:1]
    if nested < 2 and (head == "{" or head == "["):
        try:
            document = json.loads(text)
        except (ValueError, RecursionError):
            pass  # not JSON after all: scan it as text
        else:
            _json_keys(document, out, 0, nested + 1)
            return tuple(islice(out, MAX_KEYS))
    scan_text(text, out, MAX_KEYS)
    return tuple(islice(out, MAX_KEYS))


def _cached_keys(value: str | int) -> tuple[str, ...]:
    """Keys of a str or int parameter, remembered for the next call that passes it again."""
    if type(value) is int:
        key = int_key(value)
        keys: tuple[str, ...] = () if key is None else (key,)
    else:
        keys = _str_keys(value)  # type: ignore[arg-type]
        if len(value) > _CACHE_KEY_MAX:  # type: ignore[arg-type]
            return keys
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.clear()
    _CACHE[value] = keys
    return keys


# --- parameters -----------------------------------------------------------------------------


def _value_keys(value: object, out: dict[str, None], depth: int) -> None:
    """Keys in one parameter value of a type the hot loop does not handle itself."""
    try:
        if isinstance(value, str):
            text = str.__str__(value)
            if 10 <= len(text) <= MAX_TEXT:
                out.update(dict.fromkeys(_CACHE.get(text) or _cached_keys(text)))
        elif isinstance(value, bool):
            return
        elif isinstance(value, int):
            _add(out, int_key(int.__int__(value)))
        elif isinstance(value, float):
            _add(out, float_key(float.__float__(value)))
        elif isinstance(value, bytes | bytearray | memoryview):
            small = small_bytes(value)
            if small is not None:
                _add(out, normalize_str(small))
        elif depth < MAX_DEPTH:
            items: Iterable[object] | None = None
            if isinstance(value, list | tuple):
                items = value
            elif isinstance(value, dict):
                items = dict.values(value)
            else:
                kind = type(value)
                if kind.__name__ in ("Json", "Jsonb") and kind.__module__.startswith("psycopg"):
                    _json_keys(value.obj, out, 0)  # type: ignore[attr-defined]
            if items is not None:
                for item in islice(items, MAX_ITEMS):
                    _value_keys(item, out, depth + 1)
                    if len(out) >= MAX_KEYS:
                        return
    except Exception:
        return  # one odd value must not cost the keys found in the others


def _params_slow(params: object) -> tuple[str, ...]:
    out: dict[str, None] = {}
    if isinstance(params, str | bytes | bytearray | memoryview):
        _value_keys(params, out, 0)
    elif isinstance(params, Mapping):
        for item in islice(params.values(), MAX_ITEMS):
            _value_keys(item, out, 1)
    elif isinstance(params, Sequence):
        for item in islice(params, MAX_ITEMS):
            _value_keys(item, out, 1)
    else:
        # Not a container we know: an iterator here would be the application's data, and
        # reading it would consume it. Only a scalar is looked at.
        _value_keys(params, out, MAX_DEPTH)
    return tuple(islice(out, MAX_KEYS))


class IsbnExtractor:
    """The shipped :class:`EntityExtractor`: ISBN-10/13, normalised to ISBN-13."""

    name: str = "isbn"
    span_attribute: str = "book.isbn"

    def from_sql(self, sql: str) -> tuple[str, ...]:
        """ISBNs in the statement's string and numeric literals (not in comments or names)."""
        try:
            if type(sql) is not str:
                if not isinstance(sql, str):
                    return ()
                sql = str.__str__(sql)
            return _sql_keys(sql[:MAX_TEXT])
        except Exception:
            return ()

    def from_params(self, params: object) -> tuple[str, ...]:
        """ISBNs in one call's parameters: a tuple/list, a dict of named values, or ``None``.

        Measured on 2 cores shared with other jobs (upper bounds): ``(1, "title", 2.5, None)``
        0.27 µs; a 5-tuple with one ISBN-13 str or int seen recently 0.55-0.87 µs, never seen
        1.7-2.5 µs. The table is in tests/unit/test_isbn.py.
        """
        try:
            kind = type(params)
            values: Any
            if kind is tuple or kind is list:
                values = params
            elif kind is dict:
                values = params.values()  # type: ignore[attr-defined]
            elif params is None:
                return ()
            else:
                return _params_slow(params)
            out: dict[str, None] | None = None
            # Exact-type checks first: the common parameter types cost one comparison each and
            # no function call; only unusual values go to _value_keys.
            value: Any
            for value in values:
                kind = type(value)
                if kind is str:
                    if len(value) < 10 or len(value) > MAX_TEXT:
                        continue
                elif kind is int:
                    if value < MIN13 or value > MAX13:
                        continue
                elif value is None or kind is bool or (kind is float and not value >= MIN13):
                    continue  # floats above the range are sent on to float_key and rejected
                else:
                    if out is None:
                        out = {}
                    _value_keys(value, out, 1)
                    if len(out) >= MAX_KEYS:
                        break
                    continue
                # A repeated str or int costs one lookup (0.03 µs); a new ISBN-13 costs ~0.8 µs,
                # most of it the check digit.
                keys = _CACHE.get(value)
                if keys is None:
                    keys = _cached_keys(value)
                if not keys:
                    continue
                if out is None:
                    out = {}
                for key in keys:
                    out[key] = None
                if len(out) >= MAX_KEYS:
                    break
            if out is None:
                return ()
            keys = tuple(out)
            return keys if len(keys) <= MAX_KEYS else keys[:MAX_KEYS]
        except Exception:
            return ()


# --- SQL ------------------------------------------------------------------------------------

# Every branch starts with a known character (lookbehinds come after it) so the engine can skip
# ordinary SQL quickly: 7-12 µs for a Calibre-style INSERT, 1.8 ms for 64 KiB without literals.
_SQL_TOKEN = re.compile(
    r"""
      [Ee](?<![\w$][Ee])'(?P<estr>[^'\\]*(?:(?:\\.|'')[^'\\]*)*)(?P<eend>')?
    | '(?P<str>[^']*(?:''[^']*)*)(?P<end>')?
    | \$(?P<tag>[A-Za-z_][A-Za-z_0-9]*|)\$(?P<dollar>.*?)\$(?P=tag)\$
    | "[^"]*"?
    | `[^`]*`?
    | --[^\n]*
    | /\*.*?(?:\*/|\Z)
    | (?P<num>[0-9](?<![\w.$-][0-9])[0-9]{12})(?![\w.])
    """,
    re.DOTALL | re.VERBOSE,
)


def _sql_keys(sql: str) -> tuple[str, ...]:
    out: dict[str, None] = {}
    for token in _SQL_TOKEN.finditer(sql):
        number = token.group("num")
        if number is not None:
            key = check13(number)
            if key is not None:
                out[key] = None
            continue
        literal = token.group("str")
        if literal is not None:
            if token.group("end") is None:
                break  # unterminated (or cut at MAX_TEXT): the rest is not reliable
            literal = literal.replace("''", "'")
        else:
            literal = token.group("estr")
            if literal is not None:
                if token.group("eend") is None:
                    break
                literal = literal.replace("''", "'")
            else:
                literal = token.group("dollar")
        if literal is not None and len(literal) >= 10:
            for key in _str_keys(literal):
                out[key] = None
        if len(out) >= MAX_KEYS:
            break
    return tuple(islice(out, MAX_KEYS))
