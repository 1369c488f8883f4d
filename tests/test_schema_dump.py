"""sql/schema.sql is the dump of a freshly migrated database, and stays current.

The normalised dump is the same from PostgreSQL 15 and 16 (clients and servers), so the
comparison runs on either; see dpp_batches.schema_dump for what is normalised.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from dpp_batches import schema_dump

COMMITTED = Path(__file__).resolve().parent.parent / "sql" / "schema.sql"


@pytest.fixture(scope="module")
def fresh_dump(admin_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """sql/schema.sql regenerated into a temp file, the way `make schema` does it."""
    path = tmp_path_factory.mktemp("schema") / "schema.sql"
    assert schema_dump.main(["--dsn", admin_dsn, "--output", str(path)]) == 0
    return path.read_text(encoding="utf-8")


def test_committed_schema_dump_is_current(fresh_dump: str) -> None:
    committed = COMMITTED.read_text(encoding="utf-8") if COMMITTED.exists() else ""
    assert committed == fresh_dump, "sql/schema.sql is stale: run make schema\n" + (
        schema_dump.stale_diff(committed, fresh_dump)
    )


def test_dump_shows_grants_policies_and_the_history_schema(fresh_dump: str) -> None:
    assert fresh_dump.startswith(schema_dump.HEADER)
    for must in (
        "CREATE POLICY",
        "GRANT ",
        "REVOKE ",
        "CREATE SCHEMA dpp_meta;",
        "CREATE FUNCTION public.create_product_batch(",
    ):
        assert must in fresh_dump
    for volatile in ("Dumped by pg_dump version", "Dumped from database version", "\\restrict"):
        assert volatile not in fresh_dump


def test_client_binary_can_read_the_server(admin_dsn: str) -> None:
    with psycopg.connect(admin_dsn) as conn:
        major = conn.info.server_version // 10000
    program = schema_dump.client_binary("pg_dump", major)
    program_major = schema_dump._major_of(program)
    assert program_major is not None and program_major >= major  # pg_dump refuses newer servers


PG15_STYLE = """\
--
-- PostgreSQL database dump
--

\\restrict AbC123

-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

SET statement_timeout = 0;
CREATE TABLE dpp.t (
    id integer
);


--
ALTER DEFAULT PRIVILEGES FOR ROLE postgres REVOKE ALL ON FUNCTIONS  FROM PUBLIC;

--
-- PostgreSQL database dump complete
--

\\unrestrict AbC123

"""

PG16_STYLE = """\
--
-- PostgreSQL database dump
--

-- Dumped from database version 16.2
-- Dumped by pg_dump version 16.2

SET statement_timeout = 0;
CREATE TABLE dpp.t (
    id integer
);
ALTER TABLE ONLY dpp.t ALTER COLUMN id SET (pg_attver=388400344);


--
ALTER DEFAULT PRIVILEGES FOR ROLE postgres REVOKE ALL ON FUNCTIONS FROM PUBLIC;

--
-- PostgreSQL database dump complete
--

"""


def test_normalise_makes_15_and_16_dumps_equal() -> None:
    assert schema_dump.normalise(PG15_STYLE) == schema_dump.normalise(PG16_STYLE)
    # …and keeps everything else, blank lines included.
    assert schema_dump.normalise(PG16_STYLE) == (
        "--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\n"
        "CREATE TABLE dpp.t (\n    id integer\n);\n\n\n--\n"
        "ALTER DEFAULT PRIVILEGES FOR ROLE postgres REVOKE ALL ON FUNCTIONS FROM PUBLIC;\n\n"
        "--\n-- PostgreSQL database dump complete\n--\n"
    )
