"""The benchmark's data: deterministic ids and set-based generation (no row-by-row inserts).

Ids are UUIDs with a fixed prefix per kind and a 12-digit number, so pgbench scripts can address
rows with integer variables (`"c0000000-0000-4000-8000-:p"`). The layout:

* `brands` brands, each with 4 members (owner, admin, editor, viewer) and `products_per_brand`
  products; the bench user is editor of brand 1 and viewer of brands 2..`member_brands`;
* the listed product (brand 1, product 1) with exactly `list_batches` batches;
* a probe product (brand 1) with one batch, to compare per-statement work at 1 and 100 rows;
* one write product per pgbench client (brand 1), each with `write_batches` update targets;
* filler batches spread round-robin over every other product, up to the requested total.

Bulk loads run as the superuser with `session_replication_role = replica` (no audit trigger, no
FK check: the generated rows are consistent by construction), with explicit, varied timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

BRAND = "b0000000-0000-4000-8000-"
USER = "a0000000-0000-4000-8000-"
PRODUCT = "c0000000-0000-4000-8000-"
BATCH = "d0000000-0000-4000-8000-"
WRITE_BASE = 900_000_000_000  # 12 digits: write product n = WRITE_BASE + client_id
PROBE_PRODUCT = 1999


def uid(prefix: str, n: int) -> str:
    return f"{prefix}{n:012d}"


def _uid_sql(prefix: str, expr: str) -> str:
    return f"('{prefix}' || pg_catalog.lpad(({expr})::text, 12, '0'))::uuid"


@dataclass(frozen=True)
class Layout:
    brands: int = 1000
    products_per_brand: int = 10
    list_batches: int = 100
    member_brands: int = 10
    writers: int = 8
    write_batches: int = 100

    def __post_init__(self) -> None:
        if not (1 <= self.products_per_brand < PROBE_PRODUCT - 1000):
            raise ValueError("products_per_brand must be between 1 and 998")
        if self.brands * self.products_per_brand < 2:
            raise ValueError("the layout needs at least two products for filler batches")
        if not (1 <= self.member_brands <= self.brands):
            raise ValueError("member_brands must be between 1 and brands")
        if not (1 <= self.write_batches <= 999):
            raise ValueError("write_batches must be between 1 and 999")

    @property
    def user_id(self) -> str:
        return uid(USER, 1)

    @property
    def brand_id(self) -> str:
        return uid(BRAND, 1)

    @property
    def list_product(self) -> str:
        return uid(PRODUCT, 1001)

    @property
    def probe_product(self) -> str:
        return uid(PRODUCT, PROBE_PRODUCT)

    def write_product(self, client: int) -> str:
        return uid(PRODUCT, WRITE_BASE + client)

    def write_batch(self, client: int, k: int) -> str:
        return uid(BATCH, WRITE_BASE + client * 1000 + k)

    @property
    def base_rows(self) -> int:
        """Batches that exist before any filler: listed, probe and write batches."""
        return self.list_batches + 1 + self.writers * self.write_batches


def _batch_values(g: str) -> str:
    """Columns production_date .. updated_at of a generated batch numbered by expression g."""
    return (
        f"date '2025-01-01' + ({g} % 365)::integer, 1 + ({g} % 1000)::integer,"
        f" 'FAC-EU-0' || ({g} % 5),"
        f" pg_catalog.jsonb_build_object('line', 'L' || ({g} % 7), 'shift', {g} % 3),"
        f" timestamptz '2025-01-01 00:00:00+00' + {g} * interval '1 second',"
        f" timestamptz '2025-01-01 00:00:00+00' + {g} * interval '1 second'"
    )


_BATCH_COLUMNS = (
    "brand_id, id, product_id, batch_number, production_date, quantity, facility_ref,"
    " attributes, created_at, updated_at"
)


def brand(expr: str) -> str:
    return _uid_sql(BRAND, expr)


def user(expr: str) -> str:
    return _uid_sql(USER, expr)


def product(expr: str) -> str:
    return _uid_sql(PRODUCT, expr)


def batch(expr: str) -> str:
    return _uid_sql(BATCH, expr)


def _base_sql(layout: Layout) -> list[str]:
    b1 = brand("1")
    probe = product(str(PROBE_PRODUCT))
    return [
        f"insert into dpp.brands (id, name, created_at, updated_at)"
        f" select {brand('b')}, 'Bench brand ' || b, now(), now()"
        f" from generate_series(1, {layout.brands}) as b",
        # The bench user: editor of brand 1, viewer of the next brands; four members each.
        f"insert into dpp.brand_members (brand_id, user_id, role, created_at, updated_at)"
        f" select {brand('b')}, {user('1')}, case when b = 1 then 'editor' else 'viewer' end,"
        f" now(), now() from generate_series(1, {layout.member_brands}) as b"
        f" union all"
        f" select {brand('b')}, {user('1000 + b * 10 + j')},"
        f" (array['owner', 'admin', 'editor', 'viewer'])[j], now(), now()"
        f" from generate_series(1, {layout.brands}) as b, generate_series(1, 4) as j",
        f"insert into dpp.products (brand_id, id, name, created_at, updated_at)"
        f" select {brand('b')}, {product('b * 1000 + k')}, 'Product ' || k, now(), now()"
        f" from generate_series(1, {layout.brands}) as b,"
        f" generate_series(1, {layout.products_per_brand}) as k"
        f" union all select {b1}, {probe}, 'Probe product', now(), now()"
        f" union all select {b1}, {product(f'{WRITE_BASE} + c')}, 'Write product ' || c,"
        f" now(), now() from generate_series(0, {layout.writers - 1}) as c",
        # The listed product: exactly list_batches batches.
        f"insert into dpp.batches ({_BATCH_COLUMNS})"
        f" select {b1}, gen_random_uuid(), {product('1001')}, 'L-' || g, {_batch_values('g')}"
        f" from generate_series(1, {layout.list_batches}) as g",
        f"insert into dpp.batches ({_BATCH_COLUMNS})"
        f" select {b1}, gen_random_uuid(), {probe}, 'P-1', {_batch_values('1')}",
        # Update targets: batch k of write product c has id WRITE_BASE + c * 1000 + k.
        f"insert into dpp.batches ({_BATCH_COLUMNS})"
        f" select {b1}, {batch(f'{WRITE_BASE} + c * 1000 + k')}, {product(f'{WRITE_BASE} + c')},"
        f" 'U-' || k, {_batch_values('k')}"
        f" from generate_series(0, {layout.writers - 1}) as c,"
        f" generate_series(1, {layout.write_batches}) as k",
    ]


def _filler_sql(layout: Layout, first: int, last: int) -> str:
    """Filler batches first..last, round-robin over every product but the listed one."""
    others = layout.brands * layout.products_per_brand - 1
    ppb = layout.products_per_brand
    idx = f"((g - 1) % {others} + 1)"
    return (
        f"insert into dpp.batches ({_BATCH_COLUMNS})"
        f" select {brand(f'{idx} / {ppb} + 1')}, gen_random_uuid(),"
        f" {product(f'({idx} / {ppb} + 1) * 1000 + {idx} % {ppb} + 1')},"
        f" 'F' || g, {_batch_values('g')}"
        f" from generate_series({first}::bigint, {last}::bigint) as g"
    )


def load_base(dsn: str, layout: Layout) -> int:
    """Brands, members, products and the fixed batches; returns the number of batches."""
    with psycopg.connect(dsn, prepare_threshold=None) as conn, conn.transaction():
        conn.execute("set local session_replication_role = replica")
        for statement in _base_sql(layout):
            conn.execute(statement)
    _vacuum(dsn, ("dpp.brands", "dpp.brand_members", "dpp.products", "dpp.batches"))
    return layout.base_rows


def grow(dsn: str, layout: Layout, current: int, target: int) -> int:
    """Add filler batches until the table holds `target` batches; returns the new total."""
    if target <= current:
        return current
    first = current - layout.base_rows + 1
    last = target - layout.base_rows
    with psycopg.connect(dsn, prepare_threshold=None) as conn, conn.transaction():
        conn.execute("set local session_replication_role = replica")
        conn.execute(_filler_sql(layout, first, last))
    _vacuum(dsn, ("dpp.batches",))
    return target


def count_batches(dsn: str) -> int:
    with psycopg.connect(dsn, prepare_threshold=None) as conn:
        row: Any = conn.execute("select count(*) from dpp.batches").fetchone()
    return int(row[0])


def _vacuum(dsn: str, tables: tuple[str, ...]) -> None:
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=None) as conn:
        for table in tables:
            conn.execute(f"vacuum (analyze) {table}")
