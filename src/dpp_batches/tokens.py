"""JWTs the way PostgREST sees them: mint HS256 tokens, verify them with PostgREST's rules.

PostgREST (v12/v13, docs ``auth.rst`` and ``configuration.rst``) validates the bearer token
before it touches the database:

* the key is ``jwt-secret``, a shared secret of at least 32 characters; the algorithm must be
  one that key can verify (HS256/HS384/HS512), never ``none`` or an asymmetric one;
* ``exp``, ``nbf`` and ``iat`` must be numbers and are checked with 30 s of allowed skew;
* ``aud`` is checked only when ``jwt-aud`` is configured: a string must equal it, an array must
  contain it; a missing, ``null`` or empty ``aud`` passes;
* the database role is the claim at ``jwt-role-claim-key`` (default ``.role``), else
  ``db-anon-role``; the claims stored in ``request.jwt.claims`` carry it under ``"role"``.

Failures are 401s: ``PGRST301`` when the token cannot be decoded or its signature is wrong,
``PGRST303`` when a claim is invalid (v13 codes and messages; v12 reported both as PGRST301).
"""

from __future__ import annotations

import json
import re
import time
import warnings
from collections.abc import Mapping
from typing import Any

import jwt
from jwt.warnings import InsecureKeyLengthWarning

MIN_SECRET_BYTES = 32
# The HMAC algorithms a shared secret can verify; PostgREST takes the algorithm from the key.
HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")


class TokenError(Exception):
    """A token PostgREST would refuse, with the 401 it would answer."""

    def __init__(
        self, *, status: int = 401, code: str, message: str, details: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        """PostgREST's error body: always these four keys."""
        return {"code": self.code, "message": self.message, "details": self.details, "hint": None}

    def www_authenticate(self) -> str:
        """The ``WWW-Authenticate`` header PostgREST sends with a JWT failure."""
        description = self.message.replace("\\", "\\\\").replace('"', '\\"')
        return f'Bearer error="invalid_token", error_description="{description}"'


def check_secret(secret: str) -> bytes:
    """Return the secret as bytes, refusing what PostgREST refuses at startup."""
    raw = secret.encode()
    if len(raw) < MIN_SECRET_BYTES:
        raise ValueError(f"the JWT secret must be at least {MIN_SECRET_BYTES} characters long")
    return raw


def mint(
    *,
    sub: str | None,
    role: str = "authenticated",
    ttl: int = 3600,
    secret: str,
    aud: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """Return an HS256 JWT with ``role``, ``iat``, ``exp`` (= iat + ttl), ``sub`` and ``aud``
    when given. ``extra`` claims are merged last and win (e.g. ``{"nbf": …}`` or an ``exp`` in
    the past for tests)."""
    key = check_secret(secret)
    now = int(time.time())
    claims: dict[str, Any] = {"role": role, "iat": now, "exp": now + ttl}
    if sub is not None:
        claims["sub"] = sub
    if aud is not None:
        claims["aud"] = aud
    claims.update(extra or {})
    return jwt.encode(claims, key, algorithm="HS256")


def verify(
    token: str,
    *,
    secret: str,
    aud: str | None = None,
    leeway: int = 30,
    role_claim: str = "role",
    anon_role: str = "anon",
) -> dict[str, Any]:
    """Validate ``token`` as PostgREST does and return the claims it would put in
    ``request.jwt.claims``: the payload with ``"role"`` set to the resolved database role.

    ``role_claim`` is a path such as ``role`` or ``.app_metadata.roles[0]``.
    Raises :class:`TokenError` (401, PGRST301/PGRST303) for a token PostgREST would refuse.
    """
    claims = _decode(token, check_secret(secret))
    _check_time_claims(claims, leeway)
    if aud is not None:
        _check_audience(claims.get("aud"), aud)
    role = _lookup(claims, _parse_path(role_claim))
    if role is None:
        role = anon_role
    elif not isinstance(role, str):
        role = json.dumps(role, separators=(",", ":"))
    return {**claims, "role": role}


def _decode_error(message: str) -> TokenError:
    return TokenError(code="PGRST301", message=message)


def _claims_error(message: str) -> TokenError:
    return TokenError(code="PGRST303", message=message)


def _decode(token: str, key: bytes) -> dict[str, Any]:
    token = token.strip()
    if not token:
        raise _decode_error("Empty JWT is sent in Authorization header")
    parts = token.count(".") + 1
    if parts != 3:
        raise _decode_error(f"Expected 3 parts in JWT; got {parts}")
    try:
        with warnings.catch_warnings():
            # RFC 7518 recommends longer keys for HS384/HS512; PostgREST accepts any
            # secret of 32+ characters for them, and so do we.
            warnings.simplefilter("ignore", InsecureKeyLengthWarning)
            decoded = jwt.PyJWS().decode_complete(token, key, algorithms=list(HMAC_ALGORITHMS))
    except jwt.InvalidAlgorithmError as exc:
        raise _decode_error("Wrong or unsupported encoding algorithm") from exc
    except jwt.InvalidSignatureError as exc:
        raise _decode_error("JWT cryptographic operation failed") from exc
    except jwt.PyJWTError as exc:
        raise TokenError(
            code="PGRST301", message="JWT cryptographic operation failed", details=str(exc)
        ) from exc
    try:
        claims = json.loads(decoded["payload"])
    except (ValueError, RecursionError) as exc:
        raise _decode_error("JWT claims are not valid JSON") from exc
    if not isinstance(claims, dict):
        raise _decode_error("JWT claims are not a JSON object")
    return claims


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _claims_error(f"The JWT '{name}' claim must be a number")
    return float(value)


def _check_time_claims(claims: Mapping[str, Any], leeway: int) -> None:
    now = time.time()
    exp, nbf, iat = (_number(claims, name) for name in ("exp", "nbf", "iat"))
    if exp is not None and now > exp + leeway:
        raise _claims_error("JWT expired")
    if nbf is not None and now < nbf - leeway:
        raise _claims_error("JWT not yet valid")
    if iat is not None and iat > now + leeway:
        raise _claims_error("JWT issued at future")


def _check_audience(claim: Any, expected: str) -> None:
    if claim is None or claim == []:
        return
    if isinstance(claim, str):
        audiences = [claim]
    elif isinstance(claim, list) and all(isinstance(item, str) for item in claim):
        audiences = claim
    else:
        raise _claims_error("The JWT 'aud' claim must be a string or an array of strings")
    if expected not in audiences:
        raise _claims_error("JWT not in audience")


_PATH_STEP = re.compile(r"\.?([A-Za-z_$][\w$-]*)|\[(\d+)\]")


def _parse_path(path: str) -> list[str | int]:
    """``role`` / ``.role`` / ``.app_metadata.roles[0]`` → ``["app_metadata", "roles", 0]``."""
    steps: list[str | int] = []
    pos = 0
    while pos < len(path):
        match = _PATH_STEP.match(path, pos)
        if match is None:
            raise ValueError(f"unsupported role claim path: {path!r}")
        key, index = match.groups()
        steps.append(key if key is not None else int(index))
        pos = match.end()
    if not steps:
        raise ValueError("the role claim path is empty")
    return steps


def _lookup(claims: Any, steps: list[str | int]) -> Any:
    for step in steps:
        if isinstance(step, str) and isinstance(claims, dict):
            claims = claims.get(step)
        elif isinstance(step, int) and isinstance(claims, list) and step < len(claims):
            claims = claims[step]
        else:
            return None
    return claims
