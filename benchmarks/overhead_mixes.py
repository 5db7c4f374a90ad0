"""Data mixes for ``overhead.py``: what an application's INSERTs and keys really carry.

Every mix makes rows ``(key, title, price, copies)`` for ``INSERT INTO books`` and never repeats
a value: ``make(start, n)`` gives rows ``start .. start + n - 1``, so each block of a benchmark
asks for its own range and no variant finds the values of another in dbpulse's extractor cache.

* ``valid ISBN-13`` — distinct ISBN-13s (``978`` + a scattered 9-digit body) with their correct
  check digit from :func:`dbpulse.core.isbn.complete_isbn13` (the extractor's own check-digit
  validation: of the ten candidates exactly one is accepted), and short titles;
* ``ISBN-like, bad checksum`` — distinct 13-digit strings that fail the checksum: half are
  ``978`` numbers with a wrong check digit (the dearest reject: the whole sum is computed), half
  EAN-13 barcodes and order numbers with other prefixes;
* ``free text`` — a sentence and a title of 30-140 characters, with years, page counts and
  volume numbers in them: every value is scanned as text;
* ``no keys`` — integers only.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dbpulse import normalize_isbn
from dbpulse.core.isbn import complete_isbn13

Row = tuple[Any, ...]

_SCATTER = 104_729  # prime, coprime to 10**9: i -> i * _SCATTER mod 10**9 is a bijection
_BILLION = 10**9


@dataclass(frozen=True)
class Mix:
    name: str
    columns: str  # PostgreSQL column types of (key, title, price, copies)
    make: Callable[[int, int], list[Row]]


def _body(i: int) -> str:
    return f"{i * _SCATTER % _BILLION:09d}"


def valid_isbn13(i: int) -> str:
    """The ``i``-th distinct ISBN-13: ``978``, a 9-digit body, the check digit dbpulse takes."""
    return complete_isbn13("978" + _body(i))


def bad_checksum13(i: int) -> str:
    """The ``i``-th distinct 13-digit number that looks like an ISBN-13 but is not one."""
    if i % 2:
        # EAN-13 barcodes (400-440 Germany, 500-509 UK, 690-699 China) and order numbers.
        prefix = ("400", "501", "690", "202")[i // 2 % 4]
        return prefix + _body(i // 2) + str(i % 10)
    stem = "978" + _body(i // 2)
    digit = i // 2 % 10
    candidate = stem + str(digit)
    if normalize_isbn(candidate) is not None:
        candidate = stem + str((digit + 1) % 10)
    return candidate


def _valid(start: int, n: int) -> list[Row]:
    return [(valid_isbn13(i), f"title {i}", 9.99, i) for i in range(start, start + n)]


def _bad(start: int, n: int) -> list[Row]:
    return [(bad_checksum13(i), f"order {i}", 9.99, i) for i in range(start, start + n)]


_ADJECTIVES = "silent hidden last lost northern broken golden quiet distant wild".split()
_NOUNS = "river garden archive harbour winter letter orchard lighthouse compass atlas".split()
_PLACES = "Ashford,Kells,Marrow Point,the Fens,Lindqvist Bay,the Oder Valley,Tarn Hill".split(",")
_VERBS = "revisits traces follows reconstructs questions maps recounts describes".split()
_SUBJECTS = "a family,a town,two sisters,the author,an engineer,a lost crew".split(",")


def free_text(i: int) -> tuple[str, str]:
    """A distinct (sentence, title) pair, seeded by ``i``."""
    rng = random.Random(i)
    title = (
        f"The {rng.choice(_ADJECTIVES).title()} {rng.choice(_NOUNS).title()} of "
        f"{rng.choice(_PLACES)}, vol. {i % 97 + 1}"
    )
    sentence = (
        f"A {rng.randint(180, 720)}-page novel that {rng.choice(_VERBS)} {rng.choice(_SUBJECTS)} "
        f"from {rng.randint(1890, 2024)} to {rng.randint(1950, 2025)}; first printed in "
        f"{rng.choice(_PLACES)}, reprint {i}."
    )
    return sentence, title


def _text(start: int, n: int) -> list[Row]:
    return [(*free_text(i), 9.99, i) for i in range(start, start + n)]


def _ints(start: int, n: int) -> list[Row]:
    return [(i, i * 7 + 3, 999, i % 50) for i in range(start, start + n)]


MIXES: dict[str, Mix] = {
    mix.name: mix
    for mix in (
        Mix("valid ISBN-13", "text, text, real, int", _valid),
        Mix("ISBN-like, bad checksum", "text, text, real, int", _bad),
        Mix("free text", "text, text, real, int", _text),
        Mix("no keys", "bigint, bigint, int, int", _ints),
    )
}
"""The mixes by name, in the order the tables list them."""


def redis_items(rows: list[Row]) -> list[tuple[str, str]]:
    """(key, value) pairs for redis SET/GET: the row's key column in the key, its title as value."""
    return [(f"book:{row[0]}", str(row[1])) for row in rows]
