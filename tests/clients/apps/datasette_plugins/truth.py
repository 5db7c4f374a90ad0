"""Traces every connection datasette prepares (its documented ``prepare_connection`` hook)."""

import _truth
from datasette import hookimpl


@hookimpl
def prepare_connection(conn, database):
    _truth.STATEMENTS.watch(conn, database)
