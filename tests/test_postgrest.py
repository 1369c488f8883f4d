"""PostgrestClient: each call must be the transaction PostgREST v12/v13 would run, and its
outcome the status / body / headers PostgREST would send (reference/postgrest-supabase.md).

Fixture functions live in schema `pgrst_fixture` (tests/_pgrst_fixtures.sql) of a scratch,
migrated database; every call goes through the NOINHERIT authenticator, never a superuser.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg.conninfo import make_conninfo

from dpp_batches.postgrest import PostgrestClient, Response, http_status
from dpp_batches.postgrest_errors import ApiError, pgrst_raise
from dpp_batches.postgrest_request import parse_body, parse_query

FIXTURE_SQL = Path(__file__).with_name("_pgrst_fixtures.sql")
USER = uuid.UUID("8b0b7c9e-3a43-4bd5-9a0e-1d9d0a0f0a01")
ERROR_KEYS = {"code", "message", "details", "hint"}


@pytest.fixture(scope="module")
def fixture_dsn(make_database: Callable[..., str]) -> str:
    dsn = make_database(migrated=True)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(FIXTURE_SQL.read_text())
    return dsn


@pytest.fixture(scope="module")
def auth_dsn(fixture_dsn: str, authenticator_dsn_for: Callable[[str], str]) -> str:
    return authenticator_dsn_for(fixture_dsn)


@pytest.fixture(scope="module")
def client(auth_dsn: str) -> Iterator[PostgrestClient]:
    with PostgrestClient(auth_dsn, schema="pgrst_fixture") as api:
        yield api


@pytest.fixture
def admin(fixture_dsn: str) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    """Superuser connection for setup and for checking stored state (never for calls)."""
    with psycopg.connect(fixture_dsn, autocommit=True) as conn:
        conn.execute("truncate pgrst_fixture.log")
        yield conn


def notes(admin: psycopg.Connection[tuple[Any, ...]]) -> list[str]:
    return [r[0] for r in admin.execute("select note from pgrst_fixture.log order by id")]


def assert_error(resp: Response, status: int, code: str) -> None:
    assert (resp.status, resp.code) == (status, code), resp.body
    assert set(resp.body) == ERROR_KEYS
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    assert resp.headers["Proxy-Status"] == f"PostgREST; error={code}"


# ----------------------------------------------------------------------------- return shapes


def test_scalar_results_are_bare_json_values(client: PostgrestClient) -> None:
    assert client.rpc("add", {"a": 1}).body == 11  # defaulted b omitted -> its DEFAULT
    assert client.rpc("add", {"a": 1, "b": 2}).body == 3
    assert client.rpc("greet", {"name": 5}).body == "hello 5"  # JSON number -> text input
    payload = {"x": [1, None, {"y": "z"}], "n": 1.5}
    assert client.rpc("echo_jsonb", {"payload": payload}).body == payload
    assert client.rpc("is_null", {"v": None}).body == "sql null"  # JSON null -> SQL NULL
    assert client.rpc("is_null", {}).body == "omitted"
    assert client.rpc("char_len", {"c": "abcd"}).body == 4  # char widened: no truncation
    resp = client.rpc("add", {"a": 1})
    assert (resp.status, resp.ok, resp.code) == (200, True, None)
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    assert resp.headers["Content-Range"] == "0-0/*"


def test_composite_results_are_objects(client: PostgrestClient) -> None:
    assert client.rpc("get_item", {"item_id": 1}).body == {
        "id": 1,
        "name": "alpha",
        "score": 10,
        "tag": "x",
    }
    # a NULL composite becomes an all-null object, as in PostgREST (#3694)
    assert client.rpc("get_item", {"item_id": 99}).body == {
        "id": None,
        "name": None,
        "score": None,
        "tag": None,
    }
    assert client.rpc("divmod", {"n": 7, "d": 2}).body == {"q": 3, "r": 1}


def test_set_results_are_arrays(client: PostgrestClient) -> None:
    assert client.rpc("item_table", {"min_score": 40}).body == [
        {"id": 4, "name": "delta", "score": 40},
        {"id": 5, "name": "epsilon", "score": 50},
    ]
    assert client.rpc("item_table", {"min_score": 1000}).body == []
    listed = client.rpc("list_items")
    assert [r["id"] for r in listed.body] == [1, 2, 3, 4, 5]
    assert listed.headers["Content-Range"] == "0-4/*"
    assert client.rpc("item_ids").body == [1, 2, 3, 4, 5]


def test_void_is_204_without_body_and_commits(
    client: PostgrestClient, admin: psycopg.Connection[tuple[Any, ...]]
) -> None:
    resp = client.rpc("write_log", {"note": "kept"})
    assert (resp.status, resp.body) == (204, None)
    assert "Content-Type" not in resp.headers
    assert notes(admin) == ["kept"]


def test_head_has_headers_but_no_body(client: PostgrestClient) -> None:
    resp = client.rpc("add", {"a": 1}, method="HEAD")
    assert (resp.status, resp.body, resp.headers["Content-Range"]) == (200, None, "0-0/*")


# ----------------------------------------------------------------------- the transaction shape


def test_settings_statement_sets_the_request_gucs(client: PostgrestClient) -> None:
    resp = client.as_user(USER, email="u@example.com").rpc(
        "whoami",
        {"tag": "t"},
        headers={"X-Client-Info": "tests", "Cookie": "a=1; b=two"},
        prefer=["count=exact"],
    )
    echo = resp.body
    claims = echo["claims"]
    assert (claims["role"], claims["sub"], claims["aud"], claims["email"]) == (
        "authenticated",
        str(USER),
        "authenticated",
        "u@example.com",
    )
    assert claims["exp"] > time.time() and claims["iat"] <= time.time()
    assert echo["role"] == "authenticated"  # set_config('role', ...) switched the role
    assert (echo["method"], echo["path"]) == ("POST", "/rpc/whoami")
    assert echo["headers"] == {"x-client-info": "tests", "prefer": "count=exact"}
    assert echo["cookies"] == {"a": "1", "b": "two"}
    assert echo["search_path"] == '"pgrst_fixture", "public"'
    assert (echo["read_only"], echo["isolation"]) == ("on", "read committed")  # STABLE
    # the one main statement, with the body bound as $1::json and named-notation call
    assert echo["query"].startswith(
        "WITH pgrst_source AS (SELECT pgrst_call.pgrst_scalar FROM "
        "(SELECT $1::json AS json_data) pgrst_payload, LATERAL "
    )
    assert 'json_to_record(pgrst_payload.json_data) AS _("tag" text) LIMIT 1' in echo["query"]
    assert '"pgrst_fixture"."whoami"("tag" := pgrst_body."tag")' in echo["query"]
    assert echo["tag"] == "t"


def test_get_binds_arguments_directly_and_runs_read_only(client: PostgrestClient) -> None:
    echo = client.rpc("whoami_volatile", method="GET").body
    assert (echo["read_only"], echo["method"]) == ("on", "GET")
    assert client.rpc("whoami_volatile").body["read_only"] == "off"  # POST + VOLATILE
    echo = client.rpc("whoami", {"tag": "g"}, method="GET").body
    assert '"pgrst_fixture"."whoami"("tag" := $1::text)' in echo["query"]
    assert echo["tag"] == "g"
    assert client.rpc("add", {"a": 1, "b": 2}, method="GET").body == 3
    assert client.rpc("add", "a=4", method="GET").body == 14
    assert client.rpc("total", "nums=1&nums=2&nums=5", method="GET").body == 8
    assert client.rpc("total", {"nums": [4, 5]}, method="GET").body == 9
    assert client.rpc("total", {"nums": [1, 2, 3]}).body == 6
    assert_error(client.rpc("add", {"a": "x"}, method="GET"), 400, "22P02")


def test_identity_decides_the_role(client: PostgrestClient) -> None:
    anon = client.as_anon().rpc("whoami").body
    assert (anon["claims"], anon["role"]) == ({"role": "anon"}, "anon")
    service = client.as_service().rpc("whoami").body
    assert (service["claims"]["role"], service["role"]) == ("service_role", "service_role")
    no_role = client.with_claims({"sub": str(USER)}).rpc("whoami").body
    assert (no_role["claims"], no_role["role"]) == ({"sub": str(USER), "role": "anon"}, "anon")
    missing = client.with_claims({"role": "no_such_role_x"}).rpc("whoami")
    assert_error(missing, 401, "22023")
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    # the authenticator is not a member of postgres: SET ROLE is refused
    assert_error(client.with_claims({"role": "postgres"}).rpc("whoami"), 403, "42501")


def test_isolation_comes_from_the_function_config(client: PostgrestClient) -> None:
    assert client.rpc("serializable").body == "serializable"


def test_writes_in_read_only_transactions_are_405(
    client: PostgrestClient, admin: psycopg.Connection[tuple[Any, ...]]
) -> None:
    assert_error(client.rpc("stable_write", {"note": "s"}), 405, "25006")
    assert_error(client.rpc("log_count", {"note": "g"}, method="GET"), 405, "25006")
    assert notes(admin) == []
    assert client.rpc("log_count", {"note": "p"}).body == 1  # POST VOLATILE may write


def test_failed_calls_write_nothing(
    client: PostgrestClient, admin: psycopg.Connection[tuple[Any, ...]]
) -> None:
    assert_error(client.rpc("log_then_fail", {"note": "lost"}), 400, "P0001")
    assert notes(admin) == []
    assert client.rpc("write_log", {"note": "dup"}).status == 204
    dup = client.rpc("write_log", {"note": "dup"})
    assert_error(dup, 409, "23505")
    assert dup.details == "Key (note)=(dup) already exists."
    assert notes(admin) == ["dup"]
    assert client.rpc("log_count", {"note": "after"}).body == 2  # the client is still usable


def test_response_gucs_override_status_and_headers(client: PostgrestClient) -> None:
    resp = client.rpc("created")
    assert (resp.status, resp.body, resp.headers["Location"]) == (201, "created", "/items/6")


# ---------------------------------------------------------------- body and overload resolution


def test_body_forms(client: PostgrestClient) -> None:
    assert client.rpc("add", '[{"a": 1}, {"a": 2}]').body == 11  # first element only
    assert_error(client.rpc("add", '[{"a": 1}, {"b": 2}]'), 400, "PGRST102")
    assert_error(client.rpc("add", "{not json"), 400, "PGRST102")
    assert client.rpc("add", "{bad").message == "Empty or invalid json"
    assert client.rpc("is_null", "").body == "omitted"  # empty body counts as {}
    assert client.rpc("is_null", "42").body == "omitted"  # a scalar body has no keys
    assert_error(client.rpc("add", "42"), 404, "PGRST202")


def test_unknown_or_missing_keys_are_404(
    client: PostgrestClient, admin: psycopg.Connection[tuple[Any, ...]]
) -> None:
    unknown = client.rpc("write_log", {"note": "x", "extra": 1})
    assert_error(unknown, 404, "PGRST202")
    assert unknown.message == (
        "Could not find the function pgrst_fixture.write_log(extra, note) in the schema cache"
    )
    assert unknown.hint == "Perhaps you meant to call the function pgrst_fixture.write_log(note)"
    assert notes(admin) == []
    missing = client.rpc("add", {"b": 1})
    assert_error(missing, 404, "PGRST202")
    assert missing.message == "Could not find the function pgrst_fixture.add(b) in the schema cache"
    assert_error(client.rpc("no_such_function"), 404, "PGRST202")
    assert_error(client.rpc("raw_body", {"x": 1}, method="GET"), 404, "PGRST202")
    assert_error(client.rpc("add", {"a": 1}, method="DELETE"), 405, "PGRST101")


def test_overloads_and_the_unnamed_json_fallback(client: PostgrestClient) -> None:
    ambiguous = client.rpc("ov", {"a": 1})
    assert_error(ambiguous, 300, "PGRST203")
    assert ambiguous.message == (
        "Could not choose the best candidate function between: pgrst_fixture.ov(a => integer), "
        "pgrst_fixture.ov(a => integer, b => text)"
    )
    assert client.rpc("ov", {"a": 1, "b": "x"}).body == "two"
    # no named overload matches: the raw body goes to the single unnamed jsonb parameter
    assert client.rpc("raw_body", {"anything": [1, 2]}).body == {"anything": [1, 2]}
    assert client.rpc("raw_body", '"text"').body == "text"


def test_resolution_failures_never_reach_the_database(
    auth_dsn: str, admin: psycopg.Connection[tuple[Any, ...]]
) -> None:
    app = f"pgrst-test-{secrets.token_hex(4)}"

    def backend() -> tuple[Any, ...]:
        row = admin.execute(
            "select pid, query_start, state_change, query from pg_stat_activity"
            " where application_name = %s",
            [app],
        ).fetchone()
        assert row is not None
        return tuple(row)

    with PostgrestClient(auth_dsn, schema="pgrst_fixture", application_name=app) as api:
        assert api.rpc("add", {"a": 1}).body == 11
        # a first miss may re-read the catalog once (a stale cache must not hide new functions)
        assert api.rpc("write_log", {"zzz": 1}).status == 404
        before = backend()
        assert api.rpc("write_log", {"zzz": 1}).status == 404  # confirmed miss: no reload
        assert api.rpc("ov", {"a": 1}).status == 300
        assert api.rpc("add", "{bad").status == 400
        assert api.rpc("add", {"a": 1}, method="PUT").status == 405
        assert backend() == before  # not one statement was sent
    assert notes(admin) == []


def test_new_functions_are_found_without_a_manual_reload(
    client: PostgrestClient, admin: psycopg.Connection[tuple[Any, ...]]
) -> None:
    assert client.rpc("add", {"a": 1}).ok  # cache loaded
    name = f"late_{secrets.token_hex(3)}"
    admin.execute(
        f"create function pgrst_fixture.{name}(x integer) returns integer"
        " language sql immutable as $$ select x * 2 $$"
    )
    admin.execute(f"grant execute on function pgrst_fixture.{name}(integer) to anon")
    assert client.rpc(name, {"x": 21}).body == 42


# ----------------------------------------------------------------------------- error mapping


@pytest.mark.parametrize(
    ("fn", "anonymous", "status", "code"),
    [
        ("fail_pt401", False, 401, "PT401"),
        ("fail_42501", False, 403, "42501"),
        ("fail_42501", True, 401, "42501"),
        ("no_grant", False, 403, "42501"),
        ("no_grant", True, 401, "42501"),
        ("fail_p0001", False, 400, "P0001"),
        ("fail_p0002", False, 500, "P0002"),
        ("fail_22023", False, 400, "22023"),
    ],
)
def test_database_errors_map_like_postgrest(
    client: PostgrestClient, fn: str, anonymous: bool, status: int, code: str
) -> None:
    caller = client.as_anon() if anonymous else client.as_user(USER)
    resp = caller.rpc(fn)
    assert_error(resp, status, code)
    assert ("WWW-Authenticate" in resp.headers) == (status == 401)


def test_error_body_carries_message_detail_hint(client: PostgrestClient) -> None:
    resp = client.as_user(USER).rpc("fail_22023")
    assert resp.body == {
        "code": "22023",
        "message": "Invalid input: quantity",
        "details": "quantity must be > 0",
        "hint": "Send a positive integer",
    }
    assert client.as_user(USER).rpc("fail_pt401").hint == "Sign in"


def test_raise_sqlstate_pgrst(client: PostgrestClient) -> None:
    resp = client.rpc("fail_pgrst")
    assert resp.status == 402
    assert resp.body == {
        "code": "123",
        "message": "Payment Required",
        "details": "Quota exceeded",
        "hint": "Upgrade",
    }
    assert resp.headers["X-Powered-By"] == "fixture"
    assert_error(client.rpc("fail_pgrst_bad"), 500, "PGRST121")


def test_a_broken_connection_is_503_then_recovers(
    auth_dsn: str, admin: psycopg.Connection[tuple[Any, ...]]
) -> None:
    app = f"pgrst-test-{secrets.token_hex(4)}"
    with PostgrestClient(auth_dsn, schema="pgrst_fixture", application_name=app) as api:
        assert api.rpc("add", {"a": 1}).body == 11
        admin.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity where application_name = %s",
            [app],
        )
        deadline = time.monotonic() + 10
        while (
            admin.execute(
                "select 1 from pg_stat_activity where application_name = %s", [app]
            ).fetchone()
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        broken = api.rpc("add", {"a": 1})
        assert_error(broken, 503, "PGRST000")
        assert api.rpc("add", {"a": 2}).body == 12


# ------------------------------------------------------------------ read plans on set results


def test_filters_order_limit_offset_and_exact_count(client: PostgrestClient) -> None:
    resp = client.rpc(
        "list_items",
        query={
            "select": "id,label:name",
            "score": "gte.30",
            "order": "score.desc",
            "limit": "2",
            "offset": "1",
        },
        prefer=["count=exact"],
    )
    assert resp.status == 206
    assert resp.body == [{"id": 4, "label": "delta"}, {"id": 3, "label": "gamma"}]
    assert resp.headers["Content-Range"] == "1-2/3"
    assert resp.headers["Preference-Applied"] == "count=exact"

    full = client.rpc("list_items", query=[("tag", 'in.(x,"y,z")')], prefer=["count=exact"])
    assert (full.status, [r["id"] for r in full.body]) == (200, [1, 3, 5])
    assert full.headers["Content-Range"] == "0-2/3"

    def ids(*query: tuple[str, str]) -> list[int]:
        resp = client.rpc("list_items", query=list(query), method="GET")
        assert resp.status == 200, resp.body
        return [r["id"] for r in resp.body]

    assert ids(("score", "is.null")) == [2]
    assert ids(("score", "not.is.null"), ("order", "score.desc")) == [5, 4, 3, 1]
    assert ids(("name", "like.*ta")) == [2, 4]
    assert ids(("name", "ilike.A*")) == [1]
    assert ids(("id", "neq.1"), ("id", "lt.4")) == [2, 3]
    assert ids(("tag", "not.eq.x")) == [2, 5]  # NULL tags never match
    assert ids(("order", "score.asc.nullsfirst"), ("limit", "2")) == [2, 1]
    assert ids(("id", "in.()")) == []
    # values are bound, never spliced into the SQL
    assert ids(("name", "eq.alpha' or '1'='1")) == []
    assert client.rpc("item_ids", query={"limit": "2"}).body == [1, 2]


def test_count_and_range_edges(client: PostgrestClient) -> None:
    past = client.rpc("list_items", query={"offset": "9"}, prefer=["count=exact"])
    assert_error(past, 416, "PGRST103")
    assert past.details == "An offset of 9 was requested, but there are only 5 rows."
    assert client.rpc("list_items", query={"limit": "1"}).headers["Content-Range"] == "0-0/*"
    empty = client.rpc("item_table", {"min_score": 1000}, prefer=["count=exact"])
    assert (empty.status, empty.headers["Content-Range"]) == (200, "*/0")


@pytest.mark.parametrize("query", [{"select": "id,nope"}, {"order": "nope.desc"}, {"nope": "eq.1"}])
def test_unknown_columns_are_400(client: PostgrestClient, query: dict[str, str]) -> None:
    assert_error(client.rpc("list_items", query=query), 400, "42703")


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "-1"},
        {"offset": "x"},
        {"order": "id.sideways"},
        {"id": "in.1,2"},
        {"id": "fts.x"},
        {"or": "(id.eq.1)"},
        {"score": "is.maybe"},
    ],
)
def test_unparsable_query_is_pgrst100(client: PostgrestClient, query: dict[str, str]) -> None:
    assert_error(client.rpc("list_items", query=query), 400, "PGRST100")


@settings(max_examples=150, deadline=None)
@given(
    fn=st.sampled_from(["add", "echo_jsonb", "raw_body", "is_null", "list_items"]),
    body=st.one_of(
        st.text(max_size=40),
        st.from_regex(
            r'\{"(a|b|payload|v)": ?(1|"x"|null|\[1\]|\{\}|"\\u0000"|1e999)\}', fullmatch=True
        ),
    ),
    query=st.lists(
        st.tuples(
            st.sampled_from(["select", "order", "limit", "id", "name", "a"]), st.text(max_size=12)
        ),
        max_size=3,
    ),
    method=st.sampled_from(["GET", "POST"]),
)
def test_arbitrary_requests_get_a_postgrest_answer(
    client: PostgrestClient, fn: str, body: str, query: list[tuple[str, str]], method: str
) -> None:
    resp = client.rpc(fn, body, query=query, method=method)  # never raises
    assert resp.status < 500, resp.body
    if not resp.ok:
        assert set(resp.body) == ERROR_KEYS


# ------------------------------------------------------------------------------ pure helpers


@pytest.mark.parametrize(
    ("sqlstate", "message", "anonymous", "status"),
    [
        ("08006", "", False, 503),
        ("08P01", "", False, 503),
        ("09000", "", False, 500),
        ("0L000", "", False, 403),
        ("0P000", "", False, 403),
        ("21000", "UPDATE requires a WHERE clause", False, 400),
        ("21000", "more than one row returned by a subquery", False, 500),
        ("22023", 'role "ghost" does not exist', True, 401),
        ("22023", "Invalid input: quantity", False, 400),
        ("22P02", "", False, 400),
        ("22001", "", False, 400),
        ("23502", "", False, 400),
        ("23503", "", False, 409),
        ("23505", "", False, 409),
        ("23514", "", False, 400),
        ("25006", "", False, 405),
        ("25P02", "", False, 500),
        ("2D000", "", False, 500),
        ("28000", "", False, 403),
        ("38000", "", False, 500),
        ("39000", "", False, 500),
        ("3B000", "", False, 500),
        ("40001", "", False, 500),
        ("40P01", "", False, 500),
        ("42501", "", False, 403),
        ("42501", "", True, 401),
        ("42883", "function f(integer) does not exist", False, 404),
        ("42883", "function xmlagg(integer) does not exist", False, 406),
        ("42P01", "", False, 404),
        ("42P17", "", False, 500),
        ("42703", "", False, 400),
        ("53400", "", False, 500),
        ("53300", "", False, 503),
        ("54001", "", False, 500),
        ("55P03", "", False, 500),
        ("57014", "", False, 500),
        ("57P01", "", False, 503),
        ("58030", "", False, 500),
        ("F0000", "", False, 500),
        ("HV000", "", False, 500),
        ("XX000", "", False, 500),
        ("P0001", "", False, 400),
        ("P0002", "", False, 500),
        ("P0003", "", False, 500),
        ("P0004", "", False, 500),
        ("PT401", "", False, 401),
        ("PT404", "", True, 404),
        ("PT409", "", False, 409),
        ("PTabc", "", False, 500),
        ("0A000", "", False, 400),
        ("ABCDE", "", False, 400),
    ],
)
def test_http_status_table(sqlstate: str, message: str, anonymous: bool, status: int) -> None:
    assert http_status(sqlstate, message, anonymous=anonymous) == status


def test_pgrst_raise_requires_both_json_parts() -> None:
    ok = pgrst_raise('{"code":"X1","message":"m"}', '{"status":418,"headers":{"A":"b"}}')
    assert (ok.status, ok.body(), ok.headers) == (
        418,
        {"code": "X1", "message": "m", "details": None, "hint": None},
        {"A": "b"},
    )
    assert pgrst_raise('{"message":"m"}', '{"status":418,"headers":{}}').code == "PGRST121"
    assert pgrst_raise('{"code":"X","message":"m"}', '{"status":418}').code == "PGRST121"
    assert pgrst_raise('{"code":"X","message":"m"}', None).status == 500


def test_parse_body_keys() -> None:
    assert parse_body(None).keys == frozenset()
    assert parse_body('{"a": 1, "b": null}').keys == {"a", "b"}
    assert parse_body('[{"a": 1}, {"a": 2}]').is_array
    assert parse_body("[]").keys == frozenset()
    for bad in ("{", "NaN", '{"a": NaN}', '[{"a": 1}, 2]', "[1]", "\ud800", "[" * 5000):
        with pytest.raises(ApiError) as err:
            parse_body(bad)
        assert err.value.code == "PGRST102"


def test_parse_query_splits_args_from_filters() -> None:
    args, plan = parse_query(
        [
            ("a", "1"),
            ("b", "eq.2"),
            ("c", 'not.in.(1,"x,y","q\\"")'),
            ("limit", "3"),
            ("columns", "a"),
        ],
        collect_args=True,
    )
    assert args == [("a", "1")]
    assert [(f.column, f.op, f.negate, f.value) for f in plan.filters] == [
        ("b", "eq", False, "2"),
        ("c", "in", True, ("1", "x,y", 'q"')),
    ]
    assert plan.limit == 3
    assert parse_query([("a", "1")], collect_args=False)[0] == []


def test_a_schema_cache_load_that_fails_is_503_not_an_exception(auth_dsn: str) -> None:
    # statement_timeout=1ms cancels the catalog read; PostgREST answers 503 PGRST002 then.
    slow = make_conninfo(auth_dsn, options="-c statement_timeout=1")
    with PostgrestClient(slow, schema="pgrst_fixture") as api:
        resp = api.rpc("add", {"a": 1})
    assert (resp.status, resp.code) == (503, "PGRST002")
