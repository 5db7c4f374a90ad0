"""Statement fingerprints: one stable id per statement shape.

``fingerprint(sanitized)`` hashes the sanitized text of :func:`dbpulse.core.sql.parse_sql`
(literals already ``?``, comments gone, whitespace collapsed) after normalizing what still
differs between calls of one shape::

    >>> a = fingerprint("SELECT * FROM t WHERE id IN (?)")
    >>> a == fingerprint("select * from t where id in (%s, %s)")
    True

- every placeholder style becomes ``?`` (``%s``, ``%(name)s``, ``$1``, ``?1``, ``:name``,
  ``@name``), so a psycopg and a sqlite3 text of one shape match;
- ``IN (?, ?, ...)`` becomes ``IN (?)`` and a run of identical ``VALUES`` rows (or the
  sanitizer's ``, ...``) one row, so list lengths and batch sizes do not make new shapes;
- spaces around ``(``, ``)`` and ``,`` go, and the text is upper-cased (unquoted SQL names
  are case-insensitive; two quoted names differing only in case share a fingerprint).

The hash is BLAKE2b (8 bytes, 16 hex digits) of the UTF-8 text: the same in every process,
on every machine, across restarts (Python's ``hash()`` is salted per process). It is computed
once per distinct statement text, when the statement is parsed (~2 µs), never per call.
"""

from __future__ import annotations

import re
from hashlib import blake2b

__all__ = ["fingerprint", "normalized_shape"]

_PLACEHOLDER = re.compile(r"%\([^)]*\)s|%s|\$\d+|\?\d*|(?<![\w:]):[^\W\d][\w$]*|@[^\W\d][\w$]*")
_PUNCTUATION_SPACE = re.compile(r"\s*([(),])\s*")
_SPACE = re.compile(r"\s+")
_IN_LIST = re.compile(r"\bIN\(\?(?:,\?)*\)")
_REPEATED_ROWS = re.compile(r"(\([?,]*\))(?:,\1)+")
_MORE_ROWS = re.compile(r",\.\.\.")


def normalized_shape(sanitized: str) -> str:
    """The text the fingerprint hashes (see the module docstring)."""
    text = _PLACEHOLDER.sub("?", sanitized)
    text = _PUNCTUATION_SPACE.sub(r"\1", text)
    text = _SPACE.sub(" ", text).strip().upper()
    text = _MORE_ROWS.sub("", text)
    text = _REPEATED_ROWS.sub(r"\1", text)
    return _IN_LIST.sub("IN(?)", text)


def fingerprint(sanitized: str) -> str:
    """16 hex digits identifying the shape of a sanitized statement text."""
    shape = normalized_shape(sanitized)
    return blake2b(shape.encode("utf-8", "replace"), digest_size=8).hexdigest()
