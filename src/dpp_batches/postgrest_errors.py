"""PostgREST's error model: SQLSTATE -> HTTP status, and the four-key error body.

Mirrors PostgREST v13 `Error.hs` (`pgErrorStatus`, `toJsonPgrstError`, `parseRaisePGRST`) as
described in `reference/postgrest-supabase.md` §3. Pure functions only; no database access.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

JSON_CONTENT_TYPE = "application/json; charset=utf-8"

_SERVER_ERROR_CLASSES = frozenset(
    {"25", "2D", "38", "39", "3B", "40", "54", "55", "57", "58", "F0", "HV", "XX"}
)


def http_status(sqlstate: str, message: str, *, anonymous: bool) -> int:
    """HTTP status PostgREST v13 sends for a PostgreSQL error (§3.2 of the reference).

    `anonymous` is true when the request ran as the anon role (decides 401 vs 403 for 42501).
    The special SQLSTATE `PGRST` is not handled here: its status comes from the error's DETAIL
    (see `pgrst_raise`); passed here it gets the default 400.
    """
    cls = sqlstate[:2]
    if cls == "08":
        return 503
    if cls == "09":
        return 500
    if cls in ("0L", "0P", "28"):
        return 403
    if sqlstate == "21000":
        return 400 if message.endswith("requires a WHERE clause") else 500
    if sqlstate == "22023":
        return 401 if _is_missing_role(message) else 400
    if sqlstate in ("23503", "23505"):
        return 409
    if sqlstate == "25006":
        return 405
    if sqlstate == "42501":
        return 401 if anonymous else 403
    if sqlstate == "42883":
        return 406 if message.startswith("function xmlagg(") else 404
    if sqlstate == "42P01":
        return 404
    if sqlstate in ("42P17", "53400"):
        return 500
    if sqlstate == "57P01" or cls == "53":
        return 503
    if cls in _SERVER_ERROR_CLASSES:
        return 500
    if sqlstate == "P0001":
        return 400
    if cls == "P0":
        return 500
    if cls == "PT":
        code = sqlstate[2:]
        return int(code) if code.isdigit() and 100 <= int(code) <= 599 else 500
    return 400


def _is_missing_role(message: str) -> bool:
    return message.startswith('role "') and message.endswith('" does not exist')


@dataclass
class ApiError(Exception):
    """An error response: HTTP status plus PostgREST's four-key body."""

    status: int
    code: str | None
    message: str
    details: str | None = None
    hint: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "details": self.details,
            "hint": self.hint,
        }

    def response_headers(self) -> dict[str, str]:
        headers = {"Content-Type": JSON_CONTENT_TYPE}
        if self.code:
            headers["Proxy-Status"] = f"PostgREST; error={self.code}"
        if self.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        headers.update(self.headers)
        return headers


def pg_error(
    sqlstate: str, message: str, details: str | None, hint: str | None, *, anonymous: bool
) -> ApiError:
    """The response for an error PostgreSQL raised while serving a request."""
    if sqlstate == "PGRST":
        return pgrst_raise(message, details)
    return ApiError(
        http_status(sqlstate, message, anonymous=anonymous), sqlstate, message, details, hint
    )


def pgrst_raise(message: str, details: str | None) -> ApiError:
    """`RAISE SQLSTATE 'PGRST' USING MESSAGE = '<json>', DETAIL = '<json>'` (reference §3.3)."""
    body = _json_object(message)
    if (
        body is None
        or not _str(body.get("code"))
        or not _str(body.get("message"))
        or not _opt_str(body.get("details"))
        or not _opt_str(body.get("hint"))
    ):
        return _pgrst121(
            "MESSAGE",
            message,
            "MESSAGE must be a JSON object with obligatory keys: 'code', 'message' "
            "and optional keys: 'details', 'hint'.",
        )
    meta = _json_object(details or "")
    status = meta.get("status") if meta is not None else None
    headers = meta.get("headers") if meta is not None else None
    if (
        meta is None
        or not isinstance(status, int)
        or isinstance(status, bool)
        or not 100 <= status <= 599
        or not isinstance(headers, dict)
        or not all(isinstance(v, str) for v in headers.values())
    ):
        return _pgrst121(
            "DETAIL",
            details or "",
            "DETAIL must be a JSON object with obligatory keys: 'status', "
            "'headers' and optional key: 'status_text'.",
        )
    return ApiError(
        status,
        body["code"],
        body["message"],
        body.get("details"),
        body.get("hint"),
        {str(k): v for k, v in headers.items()},
    )


def _pgrst121(part: str, value: str, hint: str) -> ApiError:
    return ApiError(
        500,
        "PGRST121",
        "Could not parse JSON in the \"RAISE SQLSTATE 'PGRST'\" error",
        f"Invalid JSON value for {part}: '{value}'",
        hint,
    )


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _str(value: object) -> bool:
    return isinstance(value, str)


def _opt_str(value: object) -> bool:
    return value is None or isinstance(value, str)
