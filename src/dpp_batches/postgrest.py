"""One RPC call = one PostgREST-shaped transaction (CONTRACT §6).

`PostgrestClient` replays, over one psycopg connection as a NOINHERIT authenticator role, exactly
what PostgREST v12/v13 runs for `GET|POST /rpc/<fn>`: BEGIN with the function's access mode, one
`set_config` select (search_path, role, request.jwt.claims, request.*), one
`WITH pgrst_source AS (...)` statement, COMMIT (ROLLBACK on error), and turns the outcome into
the status, body and headers PostgREST would send. See `reference/postgrest-supabase.md`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from datetime import time as dt_time
from decimal import Decimal
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl
from uuid import UUID

import psycopg

from dpp_batches.postgrest_cache import Param, ReturnKind, Routine, load_routines, resolve
from dpp_batches.postgrest_errors import JSON_CONTENT_TYPE, ApiError, http_status, pg_error
from dpp_batches.postgrest_request import Body, ReadPlan, parse_body, parse_query, prefer_tokens
from dpp_batches.postgrest_sql import (
    CallArgs,
    DirectArgs,
    JsonArgs,
    SingleArg,
    main_statement,
    settings_statement,
)

__all__ = ["ApiError", "Caller", "PostgrestClient", "Response", "http_status"]

Query = Sequence[tuple[str, str]] | Mapping[str, str] | None
_ISOLATION = {
    "READ COMMITTED": psycopg.IsolationLevel.READ_COMMITTED,
    "REPEATABLE READ": psycopg.IsolationLevel.REPEATABLE_READ,
    "SERIALIZABLE": psycopg.IsolationLevel.SERIALIZABLE,
}


@dataclass(frozen=True)
class Response:
    status: int  # HTTP status PostgREST would send
    body: Any  # parsed JSON; None for 204 (and HEAD)
    headers: dict[str, str]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def code(self) -> str | None:
        return self._error_field("code")

    @property
    def message(self) -> str | None:
        return self._error_field("message")

    @property
    def details(self) -> str | None:
        return self._error_field("details")

    @property
    def hint(self) -> str | None:
        return self._error_field("hint")

    def _error_field(self, key: str) -> str | None:
        if self.ok or not isinstance(self.body, dict):
            return None
        value = self.body.get(key)
        return value if isinstance(value, str) else None


class Caller:
    """A client bound to one identity (the claims of a verified JWT, or none)."""

    def __init__(self, client: PostgrestClient, claims: Mapping[str, Any] | None) -> None:
        self.client = client
        self.claims = dict(claims) if claims is not None else None

    def rpc(
        self,
        fn: str,
        args: Mapping[str, Any] | str | None = None,
        *,
        method: str = "POST",
        query: Query = None,
        prefer: Sequence[str] = (),
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        return self.client.rpc(
            fn, args, claims=self.claims, method=method, query=query, prefer=prefer, headers=headers
        )


class PostgrestClient:
    """Calls RPCs of one exposed schema the way PostgREST does. Thread-safe; one connection."""

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "public",
        anon_role: str = "anon",
        extra_search_path: Sequence[str] = ("public",),
        application_name: str = "dpp-batches-api",
    ) -> None:
        self.dsn = dsn
        self.schema = schema
        self.anon_role = anon_role
        self.search_path = (schema, *extra_search_path)
        self.application_name = application_name
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._routines: dict[str, list[Routine]] | None = None
        self._misses: set[tuple[str, frozenset[str], bool]] = set()

    # -- identities ---------------------------------------------------------------------------

    def as_user(self, sub: UUID | str, **extra_claims: Any) -> Caller:
        now = int(time.time())
        claims = {
            "role": "authenticated",
            "sub": str(sub),
            "aud": "authenticated",
            "iat": now,
            "exp": now + 3600,
        }
        return Caller(self, claims | extra_claims)

    def as_service(self) -> Caller:
        now = int(time.time())
        return Caller(self, {"role": "service_role", "iat": now, "exp": now + 3600})

    def as_anon(self) -> Caller:
        return Caller(self, None)

    def with_claims(self, claims: Mapping[str, Any] | None) -> Caller:
        return Caller(self, claims)

    # -- lifecycle ----------------------------------------------------------------------------

    def reload_schema(self) -> None:
        """Re-read the exposed schema's functions (PostgREST's `NOTIFY pgrst, 'reload schema'`)."""
        with self._lock:
            self._load_routines()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> PostgrestClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the request --------------------------------------------------------------------------

    def rpc(
        self,
        fn: str,
        args: Mapping[str, Any] | str | None = None,
        *,
        claims: Mapping[str, Any] | None = None,
        method: str = "POST",
        query: Query = None,
        prefer: Sequence[str] = (),
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """`<method> /rpc/<fn>`; `args` is the JSON body (POST) or the query arguments (GET).

        A `str` args is sent verbatim: the raw body for POST, a query string for GET. For GET a
        mapping value that is a list becomes a repeated parameter (how PostgREST fills a
        VARIADIC argument), any other non-string value its JSON text. `query` holds `select`,
        `order`, `limit`, `offset` and `col=op.value` filters. Never raises for bad input: every
        failure is a Response with PostgREST's status and error body.
        """
        method = method.upper()
        with self._lock:
            try:
                return self._rpc(fn, args, claims, method, query, prefer, headers or {})
            except ApiError as err:
                return Response(
                    err.status, None if method == "HEAD" else err.body(), err.response_headers()
                )

    def _rpc(
        self,
        fn: str,
        args: Mapping[str, Any] | str | None,
        claims: Mapping[str, Any] | None,
        method: str,
        query: Query,
        prefer: Sequence[str],
        headers: Mapping[str, str],
    ) -> Response:
        if method not in ("GET", "HEAD", "POST"):
            raise ApiError(405, "PGRST101", f"Cannot use the {method} method on RPC")
        items = list(query.items() if isinstance(query, Mapping) else query or ())
        read = method in ("GET", "HEAD")
        body: Body | None = None
        if read:
            qs_args, plan = parse_query(_query_args(args) + items, collect_args=True)
            for _, value in qs_args:
                _check_text(value)
            keys = frozenset(k for k, _ in qs_args)
        else:
            body = parse_body(args if isinstance(args, str) or args is None else _dumps(args))
            qs_args, plan = parse_query(items, collect_args=False)
            keys = body.keys
        _check_plan(plan)
        tokens = prefer_tokens([*prefer, *(v for k, v in headers.items() if k.lower() == "prefer")])
        count = "count=exact" in tokens

        routine = self._lookup(fn, keys, json_body=not read)
        call: CallArgs
        if body is None:
            call = DirectArgs(_direct_args(routine, qs_args))
        elif routine.single_unnamed:
            call = SingleArg(body.text)
        else:
            call = JsonArgs(body)

        claim_set = dict(claims or {})
        role_claim = claim_set.get("role", self.anon_role)
        role = role_claim if isinstance(role_claim, str) else _dumps(role_claim)
        _check_text(role)
        claim_set["role"] = role
        settings = settings_statement(
            self.search_path,
            routine.hoisted,
            role,
            _dumps(claim_set),
            method,
            f"/rpc/{fn}",
            _dumps(_request_headers(headers, tokens)),
            _dumps(_cookies(headers)),
        )
        main = main_statement(routine, call, plan, count=count)
        read_only = read or routine.volatility in ("s", "i")
        row = self._transaction(
            routine,
            settings.text,
            settings.params,
            main.text,
            main.params,
            read_only=read_only,
            anonymous=role == self.anon_role,
        )
        return _response(routine, plan, row, count=count, head=method == "HEAD")

    # -- schema cache -------------------------------------------------------------------------

    def _lookup(self, fn: str, keys: frozenset[str], *, json_body: bool) -> Routine:
        """Resolve from the cache; on a miss not yet confirmed, reload once and retry."""
        fresh = self._routines is None
        miss = (fn, keys, json_body)
        while True:
            routines = self._routines if self._routines is not None else self._load_routines()
            try:
                return resolve(
                    self.schema,
                    fn,
                    routines.get(fn, ()),
                    keys,
                    json_body=json_body,
                    all_names=routines.keys(),
                )
            except ApiError as err:
                if err.status != 404 or fresh or miss in self._misses:
                    if err.status == 404:
                        self._misses.add(miss)
                    raise
                self._load_routines()
                fresh = True

    def _load_routines(self) -> dict[str, list[Routine]]:
        conn = self._connection()
        try:
            routines = load_routines(conn, self.schema)
        except psycopg.Error as exc:
            self._abort(conn)
            if self._conn is None:
                raise self._connection_lost(exc) from None
            # PostgREST answers 503 while its schema cache cannot be loaded, and retries.
            raise ApiError(
                503,
                "PGRST002",
                "Could not query the database for the schema cache. Retrying.",
                _first_line(exc),
                None,
            ) from None
        self._routines, self._misses = routines, set()
        return routines

    # -- the transaction ----------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(
                    self.dsn,
                    autocommit=False,
                    prepare_threshold=None,
                    application_name=self.application_name,
                )
            except psycopg.Error as exc:
                raise ApiError(
                    503,
                    "PGRST000",
                    "Could not connect with the database",
                    _first_line(exc),
                    "Check the DSN and that the server is up.",
                ) from None
        return self._conn

    def _transaction(
        self,
        routine: Routine,
        settings_sql: str,
        settings_params: list[Any],
        main_sql: str,
        main_params: list[Any],
        *,
        read_only: bool,
        anonymous: bool,
    ) -> tuple[Any, ...]:
        conn = self._connection()
        try:
            conn.isolation_level = _ISOLATION[routine.isolation or "READ COMMITTED"]
            conn.read_only = read_only
            with conn.cursor() as cur:
                cur.execute(settings_sql, settings_params)
                cur.execute(main_sql, main_params)
                row = cur.fetchone()
            conn.commit()
        except psycopg.Error as exc:
            self._abort(conn)
            if self._conn is None:
                raise self._connection_lost(exc) from None
            diag = exc.diag
            if diag.sqlstate is None:  # refused client-side (e.g. NUL in text): nothing ran
                raise ApiError(400, "22021", f"invalid input: {_first_line(exc)}") from None
            raise pg_error(
                diag.sqlstate,
                diag.message_primary or "",
                diag.message_detail,
                diag.message_hint,
                anonymous=anonymous,
            ) from None
        except BaseException:
            self._abort(conn)
            raise
        assert row is not None  # an aggregate query always returns one row
        return tuple(row)

    def _abort(self, conn: psycopg.Connection[Any]) -> None:
        """Roll back; drop the connection if it broke so the next call reconnects."""
        if not (conn.closed or conn.broken):
            try:
                conn.rollback()
                return
            except psycopg.Error:
                pass
        conn.close()
        self._conn = None

    @staticmethod
    def _connection_lost(exc: psycopg.Error) -> ApiError:
        return ApiError(
            503,
            "PGRST000",
            "Database connection lost",
            _first_line(exc),
            "The client reconnects on the next call; retry the request.",
        )


def _response(
    routine: Routine, plan: ReadPlan, row: tuple[Any, ...], *, count: bool, head: bool
) -> Response:
    total, page_total, body, guc_headers, guc_status = row[:5]
    lower = plan.offset
    upper = lower + page_total - 1
    if total is not None and lower > total:
        raise ApiError(
            416,
            "PGRST103",
            "Requested range not satisfiable",
            f"An offset of {lower} was requested, but there are only {total} rows.",
        )
    status = 206 if total is not None and (1 + upper - lower) < total else 200
    span = f"{lower}-{upper}" if total != 0 and lower <= upper else "*"
    headers = {"Content-Range": f"{span}/{'*' if total is None else total}"}
    if count:
        headers["Preference-Applied"] = "count=exact"
    if guc_headers is not None:
        headers.update(_guc_headers(guc_headers))
    if guc_status is not None:
        status = _guc_status(guc_status)
    if routine.kind is ReturnKind.VOID:
        return Response(204, None, headers)
    return Response(status, None if head else body, {"Content-Type": JSON_CONTENT_TYPE} | headers)


def _guc_headers(text: str) -> dict[str, str]:
    try:
        items = json.loads(text)
        if not isinstance(items, list):
            raise ValueError
        pairs = [next(iter(i.items())) for i in items if isinstance(i, dict) and len(i) == 1]
        if len(pairs) != len(items) or not all(isinstance(v, str) for _, v in pairs):
            raise ValueError
    except (ValueError, RecursionError):
        raise ApiError(
            500,
            "PGRST111",
            "response.headers guc must be a JSON array composed of "
            "objects with a single key and a string value",
        ) from None
    return dict(pairs)


def _guc_status(text: str) -> int:
    if not (text.isascii() and text.isdigit() and 100 <= int(text) <= 599):
        raise ApiError(500, "PGRST112", "response.status guc must be a valid status code")
    return int(text)


def _direct_args(
    routine: Routine, qs_args: Sequence[tuple[str, str]]
) -> tuple[tuple[Param, str | tuple[str, ...]], ...]:
    """GET arguments in declaration order; a repeated variadic argument builds its array."""
    values: list[tuple[Param, str | tuple[str, ...]]] = []
    for param in routine.params:
        given = [v for k, v in qs_args if k == param.name]
        if given:
            values.append((param, tuple(given) if param.variadic else given[-1]))
    return tuple(values)


def _query_args(args: Mapping[str, Any] | str | None) -> list[tuple[str, str]]:
    if args is None:
        return []
    if isinstance(args, str):
        return parse_qsl(args.removeprefix("?"), keep_blank_values=True)
    pairs: list[tuple[str, str]] = []
    for key, value in args.items():
        for item in value if isinstance(value, list | tuple) else [value]:
            pairs.append((key, item if isinstance(item, str) else _dumps(item)))
    return pairs


def _check_plan(plan: ReadPlan) -> None:
    for f in plan.filters:
        _check_text(f.column)
        for value in (f.value,) if isinstance(f.value, str) else f.value:
            _check_text(value)
    for column, alias in plan.select or ():
        _check_text(column + (alias or ""))
    for order in plan.order:
        _check_text(order.column)


def _check_text(value: str) -> None:
    """PostgreSQL text cannot hold NUL or lone surrogates; PostgREST gets 22021 for those."""
    try:
        value.encode("utf-8")
    except UnicodeError:
        ok = False
    else:
        ok = "\x00" not in value
    if not ok:
        raise ApiError(400, "22021", 'invalid byte sequence for encoding "UTF8"')


def _request_headers(headers: Mapping[str, str], prefer: Sequence[str]) -> dict[str, str]:
    out = {k.lower(): v for k, v in headers.items() if k.lower() != "cookie"}
    if prefer and "prefer" not in out:
        out["prefer"] = ", ".join(prefer)
    return out


def _cookies(headers: Mapping[str, str]) -> dict[str, str]:
    cookies: dict[str, str] = {}
    for k, v in headers.items():
        if k.lower() == "cookie":
            for part in v.split(";"):
                name, sep, value = part.strip().partition("=")
                if sep and name:
                    cookies[name] = value
    return cookies


def _dumps(value: Any) -> str:
    """JSON text as a client would send it (UTF-8); lone surrogates fall back to escapes."""
    text = json.dumps(value, ensure_ascii=False, default=_json_default)
    try:
        text.encode("utf-8")
    except UnicodeError:
        text = json.dumps(value, default=_json_default)
    return text


def _json_default(value: Any) -> Any:
    if isinstance(value, date | dt_time):  # datetime is a date
        return value.isoformat()
    if isinstance(value, UUID | Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
