"""The workload: the bench user's claims, the three requests, and each figure's scripts.

Every variant of a figure sends the same row values: the API script is the PostgREST request
(`scripts.api_script`); baseline (a) wraps the bare statement in the same framing as the table
owner; create's baseline (b) is the bare statement alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import psycopg

from dpp_batches.bench import data, scripts
from dpp_batches.bench.scripts import Rpc, Var

CREATE_PRELUDE = ("\\set seq :seq + 1", f"\\set p {data.WRITE_BASE} + :client_id")
# Batch numbers of create runs: <tag><letter>-<client>-<seq>, unique per run and variant.
LETTER = {"api": "x", "a": "a", "b": "b"}
BATCH_COLUMNS = (
    "id, brand_id, product_id, batch_number, status, production_date, quantity,"
    " facility_ref, attributes, created_at, updated_at"
)


@dataclass(frozen=True)
class Workload:
    layout: data.Layout
    owner: str  # the dpp tables' owner: the baselines' role
    claims: dict[str, Any]
    rpcs: dict[str, Rpc]

    @classmethod
    def load(cls, api_dsn: str, layout: data.Layout, owner: str) -> Workload:
        """The bench user's claims; the requests resolved from the schema cache."""
        now = int(time.time())
        # A verified JWT's payload; PostgREST writes the role into it. Valid for the whole run.
        claims = {
            "aud": "authenticated",
            "exp": now + 86_400,
            "iat": now,
            "role": "authenticated",
            "sub": layout.user_id,
        }
        bodies: dict[str, dict[str, Any]] = {
            "create_product_batch": {
                "_brand_id": layout.brand_id,
                "_product_id": f"{data.PRODUCT}:p",
                "_batch_number": "TAG-:client_id-:seq",
                "_production_date": "2026-01-15",
                "_quantity": 500,
                "_facility_ref": "FAC-EU-01",
                "_attributes": {},
            },
            "update_product_batch": {
                "_brand_id": layout.brand_id,
                "_batch_id": f"{data.BATCH}:bid",
                "_patch": {"quantity": Var("q")},
            },
            "list_product_batches": {
                "_brand_id": layout.brand_id,
                "_product_id": layout.list_product,
            },
        }
        with psycopg.connect(api_dsn, prepare_threshold=None) as conn:
            return cls(layout, owner, claims, scripts.load_rpcs(conn, bodies))

    def create_scripts(self, tag: str) -> dict[str, str]:
        lay = self.layout
        rpc = self.rpcs["create_product_batch"]
        insert = (
            "insert into dpp.batches (brand_id, product_id, batch_number, production_date,"
            " quantity, facility_ref, attributes) values"
            f" ('{lay.brand_id}', '{data.PRODUCT}:p', 'TAG-:client_id-:seq', '2026-01-15',"
            " 500, 'FAC-EU-01', '{}');"
        )
        texts = {
            "api": scripts.api_script(rpc, self.claims, CREATE_PRELUDE),
            "a": scripts.framed_script(rpc, self.owner, self.claims, insert, CREATE_PRELUDE),
            "b": scripts.bare_script(insert, CREATE_PRELUDE),
        }
        return {k: v.replace("TAG-", f"{tag}{LETTER[k]}-") for k, v in texts.items()}

    def update_scripts(self) -> dict[str, str]:
        lay = self.layout
        rpc = self.rpcs["update_product_batch"]
        prelude = (
            f"\\set k random(1, {lay.write_batches})",
            f"\\set bid {data.WRITE_BASE} + :client_id * 1000 + :k",
            "\\set q random(1, 1000000)",
        )
        update = (
            f"update dpp.batches set quantity = :q where brand_id = '{lay.brand_id}'"
            f" and id = '{data.BATCH}:bid';"
        )
        return {
            "api": scripts.api_script(rpc, self.claims, prelude),
            "a": scripts.framed_script(rpc, self.owner, self.claims, update, prelude),
        }

    def list_scripts(self) -> dict[str, str]:
        lay = self.layout
        rpc = self.rpcs["list_product_batches"]
        select = (
            f"select {BATCH_COLUMNS} from dpp.batches where brand_id = '{lay.brand_id}'"
            f" and product_id = '{lay.list_product}' order by created_at desc, id desc"
        )
        # (b): the same rows in the JSON body PostgREST builds (its json_agg over the rows).
        as_json = (
            "select null::bigint as total_result_set, pg_catalog.count(_postgrest_t)"
            " as page_total, coalesce(json_agg(_postgrest_t), '[]') as body"
            f" from ({select}) _postgrest_t;"
        )
        return {
            "api": scripts.api_script(rpc, self.claims),
            "a": scripts.framed_script(rpc, self.owner, self.claims, select + ";"),
            "b": scripts.framed_script(rpc, self.owner, self.claims, as_json),
        }
