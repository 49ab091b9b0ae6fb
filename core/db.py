"""Telling a database that cannot be reached from a statement it refuses."""

from __future__ import annotations

from django.db import InterfaceError, OperationalError

# SQLite raises OperationalError for its lock and files as much as for a bad statement ("no
# such column"); these messages are the ones that mean "not reachable now, try again".
_SQLITE_UNAVAILABLE = ("database is locked", "unable to open", "disk i/o error", "database table is locked")


def unreachable(error: BaseException) -> bool:
    """Whether `error` means the database cannot be reached now (a cut link, a restart, SQLite's
    lock held past its timeout), so the same work succeeds later, rather than a statement it
    refuses (a bug, or a schema out of date). PostgreSQL (psycopg) raises `OperationalError` or
    `InterfaceError` only for the connection; SQLite's `OperationalError` is read by message."""
    if isinstance(error, InterfaceError):
        return True
    if not isinstance(error, OperationalError):
        return False
    cause = error.__cause__
    if cause is not None and type(cause).__module__.startswith("sqlite3"):
        return any(words in str(cause).lower() for words in _SQLITE_UNAVAILABLE)
    return True
