"""`dpp-batches demo`: the whole Batches API story on a real database.

Without ``--dsn`` it starts an embedded PostgreSQL in a temporary directory (deleted
afterwards). With ``--dsn`` (a superuser or migration-owner DSN) it creates a scratch
database ``dpp_demo_<random>`` on that server and drops it at the end, so nothing of yours
is touched. Every RPC goes through :mod:`dpp_batches.postgrest` as PostgREST would send it.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from dpp_batches import deploy, embedded
from dpp_batches.migrate import migrate, status
from dpp_batches.postgrest import Caller, PostgrestClient, Response


@contextmanager
def _demo_database(dsn: str | None, say: Callable[[str], None]) -> Iterator[str]:
    """Yield an admin DSN of an empty database that is thrown away afterwards.

    With ``--dsn`` the demo's authenticator login role is dropped again too.
    """
    if dsn is None:
        with tempfile.TemporaryDirectory(prefix="dpp-demo-") as tmp:
            say("starting an embedded PostgreSQL (pgserver) …")
            server = embedded.start(Path(tmp) / "pgdata", cleanup="delete")
            try:
                yield server.dsn
            finally:
                server.stop()
        return
    name = f"dpp_demo_{secrets.token_hex(4)}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    say(f"created scratch database {name}")
    try:
        yield make_conninfo(dsn, dbname=name)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )
            conn.execute(
                sql.SQL("drop role if exists {}").format(sql.Identifier(_authenticator(name)))
            )


def _authenticator(dbname: str) -> str:
    return f"{dbname}_authenticator"


class _Story:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.step = 0

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def call(self, who: str, caller: Caller, fn: str, args: dict[str, Any]) -> Response:
        self.step += 1
        self.say(f"\n[{self.step}] POST /rpc/{fn}  as {who}")
        self.say(f"    body: {json.dumps(args)}")
        response = caller.rpc(fn, args)
        self.say(f"    HTTP {response.status}")
        rendered = json.dumps(response.body, indent=2) if response.body is not None else "(no body)"
        for line in rendered.splitlines():
            self.say(f"    {line}")
        return response


def run(dsn: str | None = None, out: TextIO | None = None) -> int:
    story = _Story(out or sys.stdout)
    with _demo_database(dsn, story.say) as admin_dsn:
        story.say("migrating …")
        result = migrate(admin_dsn, log=lambda line: story.say(f"  {line}"))
        del result
        story.say(status(admin_dsn).render())
        # A login role of the demo's own, like PostgREST's authenticator.
        role, password = _authenticator(_dbname(admin_dsn)), secrets.token_hex(16)
        deploy.ensure_authenticator(admin_dsn, role, password=password)
        api_dsn = make_conninfo(admin_dsn, user=role, password=password)
        with PostgrestClient(api_dsn) as api:
            return _tell(story, api)


def _dbname(dsn: str) -> str:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("select current_database()").fetchone()
    assert row is not None
    return str(row[0])


def _tell(story: _Story, api: PostgrestClient) -> int:
    service = api.as_service()
    owner_id, editor_id, viewer_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    owner, editor, viewer = api.as_user(owner_id), api.as_user(editor_id), api.as_user(viewer_id)
    expected: list[tuple[Response, int]] = []

    def expect(response: Response, status: int) -> Response:
        expected.append((response, status))
        return response

    brand = expect(
        story.call("service_role", service, "create_brand", {"_name": "Acme Outdoor"}), 200
    )
    brand_id = brand.body["id"]
    product = expect(
        story.call(
            "service_role",
            service,
            "create_product",
            {"_brand_id": brand_id, "_name": "Trail Jacket", "_gtin": "4006381333931"},
        ),
        200,
    )
    product_id = product.body["id"]
    for user_id, role in ((owner_id, "owner"), (editor_id, "editor"), (viewer_id, "viewer")):
        expect(
            story.call(
                "service_role",
                service,
                "add_brand_member",
                {"_brand_id": brand_id, "_user_id": str(user_id), "_role": role},
            ),
            200,
        )
    created = expect(
        story.call(
            f"editor {editor_id}",
            editor,
            "create_product_batch",
            {
                "_brand_id": brand_id,
                "_product_id": product_id,
                "_batch_number": "BATCH-2026-001",
                "_production_date": "2026-01-15",
                "_quantity": 500,
                "_facility_ref": "FAC-EU-01",
                "_attributes": {"colour": "forest green"},
            },
        ),
        200,
    )
    listing = {"_brand_id": brand_id, "_product_id": product_id}
    expect(story.call(f"editor {editor_id}", editor, "list_product_batches", listing), 200)
    expect(
        story.call(
            f"editor {editor_id}",
            editor,
            "update_product_batch",
            {
                "_brand_id": brand_id,
                "_batch_id": created.body["id"],
                "_patch": {"quantity": 600, "facility_ref": "FAC-EU-02"},
            },
        ),
        200,
    )
    expect(story.call(f"editor {editor_id}", editor, "list_product_batches", listing), 200)
    expect(
        story.call(
            f"viewer {viewer_id}",
            viewer,
            "create_product_batch",
            {"_brand_id": brand_id, "_product_id": product_id, "_batch_number": "BATCH-2026-002"},
        ),
        403,
    )
    expect(
        story.call(
            f"editor {editor_id}",
            editor,
            "create_product_batch",
            {"_brand_id": brand_id, "_product_id": product_id, "_batch_number": "BATCH 2026#2"},
        ),
        400,
    )
    _recall(story, owner, f"owner {owner_id}", brand_id, created.body["id"], expect)
    wrong = [(r.status, want) for r, want in expected if r.status != want]
    if wrong:
        story.say(f"\ndemo FAILED: unexpected statuses (got, wanted): {wrong}")
        return 1
    story.say(f"\ndemo finished: {len(expected)} calls, every status as expected")
    return 0


def _recall(
    story: _Story,
    owner: Caller,
    who: str,
    brand_id: str,
    batch_id: str,
    expect: Callable[[Response, int], Response],
) -> None:
    """The lifecycle: hold the batch, recall it with a reason, then read its history."""
    batch = {"_brand_id": brand_id, "_batch_id": batch_id}
    expect(
        story.call(
            who,
            owner,
            "set_product_batch_status",
            {**batch, "_status": "on_hold", "_reason": "Customer reports of seam failures"},
        ),
        200,
    )
    expect(
        story.call(
            who,
            owner,
            "set_product_batch_status",
            {**batch, "_status": "recalled", "_reason": "Seam tape defect confirmed by QA"},
        ),
        200,
    )
    expect(story.call(who, owner, "list_product_batch_history", batch), 200)


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dsn",
        help="admin DSN of a server to use instead of the embedded one; the demo creates a "
        "scratch database there and drops it afterwards",
    )


def run_demo(args: argparse.Namespace) -> int:
    """Run the Batches API story on an embedded PostgreSQL (or --dsn), printing every call."""
    try:
        return run(args.dsn)
    except embedded.EmbeddedUnavailable as exc:
        print(f"dpp-batches demo: error: {exc}", file=sys.stderr)
        return 2


COMMANDS = [("demo", add_demo_arguments, run_demo)]
