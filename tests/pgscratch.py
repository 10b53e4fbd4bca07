"""Scratch PostgreSQL databases for tests and benchmarks of connectors that read real tables."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"


def admin_connect(dbname: str = "postgres") -> psycopg.Connection:
    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=dbname, connect_timeout=3, autocommit=True
    )


@contextmanager
def scratch_database(suffix: str, setup_sql: str = "") -> Iterator[str]:
    """Create a database only this test process uses, fill it, and drop it afterwards; skip
    the calling module when no PostgreSQL listens locally."""
    name = f"railyard_pgconn_{suffix}_{os.getpid()}"
    try:
        admin = admin_connect()
    except psycopg.OperationalError as error:
        pytest.skip(f"PostgreSQL is not reachable on {PG_HOST}:{PG_PORT}: {error}")
    with admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            if setup_sql:
                with admin_connect(name) as conn:
                    conn.execute(setup_sql)
            yield name
        finally:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
