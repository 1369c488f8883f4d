"""Every function in `public` has an OpenAPI-quality `comment on function`.

PostgREST turns the comment into the OpenAPI description: the first line is the summary, the
rest the description. So the first line must be a short summary and the rest must document
each argument by name. Checked in the catalog of a migrated database.
"""

from __future__ import annotations

import re

import psycopg

CONTRACT_RPCS = {
    "create_brand",
    "add_brand_member",
    "remove_brand_member",
    "create_product",
    "create_product_batch",
    "list_product_batches",
    "update_product_batch",
}
SUMMARY_MAX = 100

# Routines in public that no extension owns, with their input argument names.
FUNCTIONS_SQL = """
select p.proname::text,
       p.oid::regprocedure::text,
       pg_catalog.obj_description(p.oid, 'pg_proc'),
       array(select a.name
             from unnest(coalesce(p.proargnames, '{}'), coalesce(p.proargmodes::text[], '{}'))
                  as a(name, mode)
             where coalesce(a.mode, 'i') in ('i', 'b', 'v') and a.name <> '')
from pg_catalog.pg_proc p
where p.pronamespace = 'public'::regnamespace
  and not exists (select from pg_catalog.pg_depend d
                  where d.classid = 'pg_catalog.pg_proc'::regclass and d.objid = p.oid
                    and d.deptype = 'e')
order by 2
"""


def doc_problems(conn: psycopg.Connection[tuple[object, ...]]) -> tuple[set[str], list[str]]:
    """(names of the functions in public, one line per documentation problem)."""
    names: set[str] = set()
    problems: list[str] = []
    for name, signature, comment, arguments in conn.execute(FUNCTIONS_SQL).fetchall():
        assert isinstance(name, str) and isinstance(arguments, list)
        names.add(name)
        if not isinstance(comment, str) or not comment.strip():
            problems.append(f"{signature}: no comment on function")
            continue
        summary, _, body = comment.partition("\n")
        if not summary.strip():
            problems.append(f"{signature}: the first line (the summary) is empty")
        elif len(summary) > SUMMARY_MAX:
            problems.append(f"{signature}: summary is {len(summary)} > {SUMMARY_MAX} characters")
        for argument in arguments:
            if not re.search(rf"(?<![\w$]){re.escape(argument)}(?![\w$])", body):
                problems.append(f"{signature}: the description never mentions {argument}")
    return names, problems


def test_every_public_function_has_a_summary_and_documents_its_arguments(db_dsn: str) -> None:
    with psycopg.connect(db_dsn) as conn:
        names, problems = doc_problems(conn)
    assert names >= CONTRACT_RPCS, f"missing RPCs: {sorted(CONTRACT_RPCS - names)}"
    assert problems == []


def test_the_check_catches_missing_and_incomplete_comments(db_dsn: str) -> None:
    """Guard the guard: break the docs inside a transaction that is rolled back."""
    with psycopg.connect(db_dsn) as conn:
        conn.execute("comment on function public.create_brand(text) is null")
        conn.execute(
            "comment on function public.remove_brand_member(uuid, uuid) is "
            "$$Remove a member.\n_brand_id: the brand.$$"
        )
        conn.execute(
            "create function public.undocumented(_x int) returns int language sql "
            "immutable set search_path = '' return _x"
        )
        conn.execute(
            "comment on function public.undocumented(int) is "
            f"$${'x' * (SUMMARY_MAX + 1)}\n_x: a number.$$"
        )
        _, problems = doc_problems(conn)
        conn.rollback()
    assert problems == [
        "create_brand(text): no comment on function",
        "remove_brand_member(uuid,uuid): the description never mentions _user_id",
        f"undocumented(integer): summary is {SUMMARY_MAX + 1} > {SUMMARY_MAX} characters",
    ]
