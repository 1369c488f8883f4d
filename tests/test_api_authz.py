"""The authorization matrix: every kind of caller x every RPC x {own brand, another brand}.

Expected outcome per CONTRACT §2-§5: not authenticated -> 401 PT401; authenticated without the
needed role (or not a member) -> 403 42501; otherwise 200. After every refused call the stored
state of all dpp tables is unchanged.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from _api_helpers import World, assert_error, batch_no, fingerprint, make_world, new_id, ok

CALLERS = (
    "no_claims",  # no JWT at all: PostgREST's anon role, claims {"role": "anon"}
    "anon_key",  # Supabase anon key: a JWT with role anon
    "no_sub",  # role authenticated without sub
    "bad_sub",  # role authenticated, sub not a UUID
    "expired",  # the owner's own claims, but exp in the past
    "service_expired",  # service_role claims with exp in the past
    "non_member",
    "viewer",
    "editor",
    "admin",
    "owner",
    "service",
)
RPCS = (
    "create_brand",
    "add_brand_member",
    "remove_brand_member",
    "create_product",
    "create_product_batch",
    "list_product_batches",
    "update_product_batch",
    "set_product_batch_status",
    "get_product_batch",
    "find_product_batch",
    "list_brand_batches",
    "list_product_batch_history",
)
NEEDED = {
    "add_brand_member": "admin",
    "remove_brand_member": "admin",
    "create_product": "editor",
    "create_product_batch": "editor",
    "list_product_batches": "viewer",
    "update_product_batch": "editor",
    "set_product_batch_status": "editor",  # on_hold here; recalled/destroyed: test_lifecycle
    "get_product_batch": "viewer",
    "find_product_batch": "viewer",
    "list_brand_batches": "viewer",
    "list_product_batch_history": "viewer",
}
READ_ONLY = {
    "list_product_batches",
    "get_product_batch",
    "find_product_batch",
    "list_brand_batches",
    "list_product_batch_history",
}
RANK = {"non_member": 0, "viewer": 1, "editor": 2, "admin": 3, "owner": 4}
UNAUTHENTICATED = {"no_claims", "anon_key", "no_sub", "bad_sub", "expired", "service_expired"}


def expected_status(caller: str, rpc: str, target: str) -> int:
    if caller in UNAUTHENTICATED:
        return 401
    if caller == "service":
        return 200
    if rpc == "create_brand" or target == "other":
        return 403
    return 200 if RANK[caller] >= RANK[NEEDED[rpc]] else 403


CASES = [
    pytest.param(caller, rpc, target, id=f"{caller}-{rpc}-{target}")
    for caller in CALLERS
    for rpc in RPCS
    for target in (("own",) if rpc == "create_brand" else ("own", "other"))
]


@pytest.fixture(scope="module")
def world(api: Any) -> World:
    return make_world(api)


def _caller(api: Any, world: World, caller: str) -> Any:
    past = int(time.time()) - 60
    owner = world.a.members["owner"]
    match caller:
        case "no_claims":
            return api.with_claims(None)
        case "anon_key":
            return api.with_claims({"role": "anon", "iss": "supabase", "exp": past + 3660})
        case "no_sub":
            return api.with_claims({"role": "authenticated", "exp": past + 3660})
        case "bad_sub":
            return api.as_user(f"{owner}x")
        case "expired":
            return api.as_user(owner, iat=past - 3600, exp=past)
        case "service_expired":
            return api.with_claims({"role": "service_role", "exp": past})
        case "non_member":
            return api.as_user(new_id())
        case "service":
            return api.as_service()
        case role:
            return api.as_user(world.a.members[role])


def _args(api: Any, world: World, rpc: str, target: str) -> dict[str, Any]:
    """Valid arguments, so that only authorization decides the outcome."""
    brand = world.a if target == "own" else world.b
    match rpc:
        case "create_brand":
            return {"_name": "Another brand"}
        case "add_brand_member":
            return {"_brand_id": brand.id, "_user_id": new_id(), "_role": "viewer"}
        case "remove_brand_member":
            user = new_id()  # a fresh viewer, so a successful removal harms no other case
            ok(
                api.as_service().rpc(
                    "add_brand_member", {"_brand_id": brand.id, "_user_id": user, "_role": "viewer"}
                )
            )
            return {"_brand_id": brand.id, "_user_id": user}
        case "create_product":
            return {"_brand_id": brand.id, "_name": "Product"}
        case "create_product_batch":
            return {
                "_brand_id": brand.id,
                "_product_id": brand.product_id,
                "_batch_number": batch_no(),
            }
        case "list_product_batches":
            return {"_brand_id": brand.id, "_product_id": brand.product_id}
        case "set_product_batch_status":
            batch = ok(  # a fresh active batch, so every allowed call is a valid transition
                api.as_service().rpc(
                    "create_product_batch",
                    {
                        "_brand_id": brand.id,
                        "_product_id": brand.product_id,
                        "_batch_number": batch_no(),
                    },
                )
            )
            return {
                "_brand_id": brand.id,
                "_batch_id": batch["id"],
                "_status": "on_hold",
                "_reason": "Authorization check",
            }
        case "get_product_batch" | "list_product_batch_history":
            return {"_brand_id": brand.id, "_batch_id": brand.batch_id}
        case "find_product_batch":
            number = ok(
                api.as_service().rpc(
                    "get_product_batch", {"_brand_id": brand.id, "_batch_id": brand.batch_id}
                )
            )["batch_number"]
            return {
                "_brand_id": brand.id,
                "_product_id": brand.product_id,
                "_batch_number": number,
            }
        case "list_brand_batches":
            return {"_brand_id": brand.id, "_limit": 5}
        case _:
            return {
                "_brand_id": brand.id,
                "_batch_id": brand.batch_id,
                "_patch": {"quantity": int(time.time_ns() % 1_000_000) + 1},
            }


@pytest.mark.parametrize(("caller", "rpc", "target"), CASES)
def test_authorization_matrix(
    api: Any, world: World, db_dsn: str, caller: str, rpc: str, target: str
) -> None:
    args = _args(api, world, rpc, target)
    before = fingerprint(db_dsn)
    resp = _caller(api, world, caller).rpc(rpc, args)
    after = fingerprint(db_dsn)
    status = expected_status(caller, rpc, target)

    if status == 401:
        assert_error(resp, 401, "PT401", "Not authenticated")
    elif status == 403:
        assert_error(resp, 403, "42501", "Forbidden")
    else:
        assert resp.status == 200, resp.body
    if status != 200 or rpc in READ_ONLY:
        assert after == before, "a refused or read-only call changed stored state"
    else:
        assert after != before, "a successful mutation changed nothing"


def test_matrix_covers_every_rpc_and_caller() -> None:
    assert {c.values[1] for c in CASES} == set(RPCS)
    assert {c.values[0] for c in CASES} == set(CALLERS)


def test_list_by_get_needs_authentication(api: Any, world: World) -> None:
    """GET (READ ONLY) takes the same checks as POST."""
    args = {"_brand_id": world.a.id, "_product_id": world.a.product_id}
    assert_error(
        api.as_anon().rpc("list_product_batches", args, method="GET"),
        401,
        "PT401",
        "Not authenticated",
    )
    assert_error(
        api.as_user(new_id()).rpc("list_product_batches", args, method="GET"),
        403,
        "42501",
        "Forbidden",
    )
    assert (
        api.as_user(world.a.members["viewer"])
        .rpc("list_product_batches", args, method="GET")
        .status
        == 200
    )


def test_forbidden_looks_the_same_for_existing_and_missing_brands(api: Any, world: World) -> None:
    """A non-member cannot tell an existing brand from a random id."""
    outsider = api.as_user(world.a.members["editor"])
    for rpc, extra in (
        ("create_product", {"_name": "X"}),
        ("list_product_batches", {"_product_id": world.b.product_id}),
        ("get_product_batch", {"_batch_id": world.b.batch_id}),
        ("list_brand_batches", {}),
        ("set_product_batch_status", {"_batch_id": world.b.batch_id, "_status": "closed"}),
    ):
        real = outsider.rpc(rpc, {"_brand_id": world.b.id, **extra})
        fake = outsider.rpc(rpc, {"_brand_id": new_id(), **extra})
        assert real.status == fake.status == 403
        assert real.body == fake.body


@pytest.fixture
def team(api: Any) -> tuple[Any, dict[str, str]]:
    """A fresh brand with an owner, an admin, an editor and a viewer."""
    brand = make_world(api).a
    return brand, brand.members


def test_admin_cannot_grant_owner_or_admin(
    api: Any, team: tuple[Any, dict[str, str]], db_dsn: str
) -> None:
    brand, members = team
    admin = api.as_user(members["admin"])
    before = fingerprint(db_dsn, brand.id)
    for role in ("owner", "admin"):
        resp = admin.rpc(
            "add_brand_member", {"_brand_id": brand.id, "_user_id": new_id(), "_role": role}
        )
        assert_error(resp, 403, "42501", "Forbidden")
    for victim in ("owner", "admin"):  # nor change or remove an owner or admin
        assert_error(
            admin.rpc(
                "add_brand_member",
                {"_brand_id": brand.id, "_user_id": members[victim], "_role": "viewer"},
            ),
            403,
            "42501",
            "Forbidden",
        )
        assert_error(
            admin.rpc("remove_brand_member", {"_brand_id": brand.id, "_user_id": members[victim]}),
            403,
            "42501",
            "Forbidden",
        )
    assert fingerprint(db_dsn, brand.id) == before
    # …but may promote a viewer to editor and remove an editor
    ok(
        admin.rpc(
            "add_brand_member",
            {"_brand_id": brand.id, "_user_id": members["viewer"], "_role": "editor"},
        )
    )
    ok(admin.rpc("remove_brand_member", {"_brand_id": brand.id, "_user_id": members["editor"]}))


def test_owner_may_grant_any_role(api: Any, team: tuple[Any, dict[str, str]]) -> None:
    brand, members = team
    owner = api.as_user(members["owner"])
    second = new_id()
    for role in ("viewer", "editor", "admin", "owner"):
        body = ok(
            owner.rpc(
                "add_brand_member", {"_brand_id": brand.id, "_user_id": second, "_role": role}
            )
        )
        assert body["role"] == role
    ok(
        owner.rpc(
            "add_brand_member",
            {"_brand_id": brand.id, "_user_id": members["admin"], "_role": "viewer"},
        )
    )
    # the second owner may now demote the first
    ok(
        api.as_user(second).rpc(
            "add_brand_member",
            {"_brand_id": brand.id, "_user_id": members["owner"], "_role": "editor"},
        )
    )


def test_last_owner_cannot_be_demoted_or_removed(
    api: Any, team: tuple[Any, dict[str, str]], db_dsn: str
) -> None:
    brand, members = team
    owner = api.as_user(members["owner"])
    before = fingerprint(db_dsn, brand.id)
    demote = owner.rpc(
        "add_brand_member", {"_brand_id": brand.id, "_user_id": members["owner"], "_role": "admin"}
    )
    assert_error(demote, 400, "22023", "Invalid input")
    assert "last owner" in (demote.details or "")
    remove = owner.rpc("remove_brand_member", {"_brand_id": brand.id, "_user_id": members["owner"]})
    assert_error(remove, 400, "22023", "Invalid input")
    assert fingerprint(db_dsn, brand.id) == before
    # the service role (platform admin) may
    ok(
        api.as_service().rpc(
            "remove_brand_member", {"_brand_id": brand.id, "_user_id": members["owner"]}
        )
    )


def test_member_rpcs_validate_input_after_access(
    api: Any, team: tuple[Any, dict[str, str]]
) -> None:
    brand, members = team
    owner = api.as_user(members["owner"])
    bad_role = owner.rpc(
        "add_brand_member", {"_brand_id": brand.id, "_user_id": new_id(), "_role": "superuser"}
    )
    assert_error(bad_role, 400, "22023", "Invalid input")
    assert "_role" in (bad_role.details or "")
    null_user = owner.rpc(
        "add_brand_member", {"_brand_id": brand.id, "_user_id": None, "_role": "viewer"}
    )
    assert_error(null_user, 400, "22023", "Invalid input")
    not_member = owner.rpc("remove_brand_member", {"_brand_id": brand.id, "_user_id": new_id()})
    assert_error(not_member, 400, "22023", "Invalid input")
    # a viewer gets 403 even for invalid input: access is checked first
    assert_error(
        api.as_user(members["viewer"]).rpc(
            "add_brand_member", {"_brand_id": brand.id, "_user_id": None, "_role": "nope"}
        ),
        403,
        "42501",
        "Forbidden",
    )


def test_service_role_on_missing_brand_is_invalid_input(as_service: Any) -> None:
    for rpc, args in (
        ("create_product", {"_name": "X"}),
        ("add_brand_member", {"_user_id": new_id(), "_role": "viewer"}),
        ("list_product_batches", {"_product_id": new_id()}),
        ("get_product_batch", {"_batch_id": new_id()}),
        ("list_brand_batches", {}),
        ("list_product_batch_history", {"_batch_id": new_id()}),
        ("set_product_batch_status", {"_batch_id": new_id(), "_status": "closed"}),
    ):
        resp = as_service.rpc(rpc, {"_brand_id": new_id(), **args})
        assert_error(resp, 400, "22023", "Invalid input")
        assert "_brand_id" in (resp.details or "")
