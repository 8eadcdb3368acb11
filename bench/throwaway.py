"""A throwaway PostgreSQL database beside the developer's, so a benchmark never touches real data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import dj_database_url
import psycopg2
from psycopg2 import sql

# CREATE and DROP DATABASE need a connection to some other database of the same server.
MAINTENANCE_DATABASES = ("postgres", "template1")


def database_url_with_name(url: str, name: str) -> str:
    """`url` with its database name replaced: same server, same credentials, same options."""
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def connect(url: str, *, dbname: str | None = None) -> Any:
    """A psycopg2 connection to the database of `url` (or to `dbname` on the same server)."""
    config = dj_database_url.parse(url)
    params = {
        "dbname": dbname or config["NAME"],
        "user": config.get("USER"),
        "password": config.get("PASSWORD"),
        "host": config.get("HOST"),
        "port": config.get("PORT"),
        **config.get("OPTIONS", {}),
    }
    return psycopg2.connect(**{key: value for key, value in params.items() if value})


def _maintenance_connection(server_url: str) -> Any:
    errors = []
    for name in MAINTENANCE_DATABASES:
        try:
            connection = connect(server_url, dbname=name)
        except psycopg2.OperationalError as exc:
            errors.append(f"{name}: {str(exc).strip()}")
            continue
        connection.autocommit = True  # CREATE/DROP DATABASE refuse to run in a transaction
        return connection
    raise RuntimeError(
        "Cannot reach a maintenance database on the server of DATABASE_URL to create the "
        "benchmark's own database: " + "; ".join(errors)
    )


def _execute_on_server(server_url: str, statement: sql.Composable) -> None:
    connection = _maintenance_connection(server_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


def drop_database(server_url: str, name: str) -> None:
    """Drop `name` if it exists, disconnecting anything still attached (PostgreSQL >= 13)."""
    connection = _maintenance_connection(server_url)
    try:
        force = " WITH (FORCE)" if connection.server_version >= 130000 else ""
        with connection.cursor() as cursor:
            cursor.execute(
                sql.SQL("DROP DATABASE IF EXISTS {}" + force).format(sql.Identifier(name))
            )
    finally:
        connection.close()


@contextmanager
def throwaway_database(server_url: str, name: str) -> Iterator[str]:
    """Create database `name` on the server of `server_url` and yield its URL.

    It is dropped on the way out, whether the block finished, raised or was interrupted
    (Ctrl-C; SIGTERM too once it is turned into SystemExit). Only a SIGKILL leaves it behind.
    """
    _execute_on_server(server_url, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield database_url_with_name(server_url, name)
    finally:
        drop_database(server_url, name)


def django_setup(*, database_url: str) -> None:
    """Set Django up on `database_url` (the throwaway database), as the benchmarks run it."""
    os.environ["DATABASE_URL"] = database_url
    # DEBUG keeps every SQL statement in memory; that bookkeeping is not what is measured.
    os.environ["DEBUG"] = "False"
    # The benchmark signs nothing that outlives it, so development's throwaway SECRET_KEY will do.
    os.environ.setdefault("EARSHOT_DEVELOPMENT", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
