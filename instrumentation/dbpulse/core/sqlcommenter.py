"""sqlcommenter: the trace context of a sampled call, appended to the SQL the server sees.

With ``DBPULSE_SQLCOMMENTER=true`` (or ``PsycopgInstrumentor().instrument(sqlcommenter=True)``)
every PostgreSQL statement whose database span is sampled is sent as::

    SELECT * FROM books WHERE id = %s /*application='isbn-collector',traceparent='00-4bf9...-01'*/

in the `sqlcommenter <https://google.github.io/sqlcommenter/spec/>`_ format (keys sorted,
values URL-encoded and single-quoted): the W3C ``traceparent`` of the database span itself and
the service's ``service.name`` as ``application``. ``pg_stat_activity``, the server log
(``log_min_duration_statement``), ``auto_explain`` and Cloud SQL / AlloyDB query insights then
name the trace. Only sampled calls are rewritten: unsampled ones (most of them under load) are
sent as written, so psycopg's prepared statements keep working for them; each sampled call is a
distinct text to the server. dbpulse's own statement cache, span attributes and fingerprints
use the original text (the comment is added after the parse, never parsed). As the
specification asks, a statement that already has a comment is left alone.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

__all__ = ["comment_for", "with_comment"]


def comment_for(span: Any, service: str | None) -> str:
    """The sqlcommenter comment for ``span`` (its ``traceparent``) and ``service``."""
    context = span.get_span_context()
    pairs = {
        "traceparent": (
            f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
        )
    }
    if service:
        pairs["application"] = service
    body = ",".join(
        f"{quote(key, safe='')}='{quote(value, safe='')}'" for key, value in sorted(pairs.items())
    )
    return f"/*{body}*/"


def with_comment(sql: str, comment: str, has_params: bool) -> str:
    """``sql`` with ``comment`` appended (before a final ``;``); unchanged if it has a comment.
    With parameters, ``%`` is doubled (psycopg reads ``%`` as a placeholder then)."""
    if "/*" in sql or "--" in sql:
        return sql
    if has_params:
        comment = comment.replace("%", "%%")
    text = sql.rstrip()
    if text.endswith(";"):
        return f"{text[:-1]} {comment};"
    return f"{text} {comment}"
