"""tokens.mint / tokens.verify against PostgREST's JWT rules (pure: no database).

The clock is frozen so the 30 s leeway is tested at its exact edges.
"""

from __future__ import annotations

import base64
import hmac
import json
from typing import Any

import pytest

from dpp_batches import tokens
from dpp_batches.tokens import TokenError, mint, verify

SECRET = "test-secret-that-is-32-chars-ok!"  # exactly 32 bytes: the PostgREST minimum
OTHER_SECRET = "another-secret-of-32-characters!"
USER = "3f1c2b7e-9a4d-4c1e-8b2a-5d6e7f809a1b"
NOW = 1_800_000_000


class FrozenClock:
    def time(self) -> float:
        return float(NOW)


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "time", FrozenClock())


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def forge(header: dict[str, Any], payload: Any, key: str = SECRET, digest: str = "sha256") -> str:
    """A token signed by hand (independent of pyjwt), for headers pyjwt will not produce."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    signature = hmac.new(key.encode(), signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64url(signature)}"


def claims_at(**times: int) -> dict[str, Any]:
    return {"role": "authenticated", "sub": USER, **{k: NOW + v for k, v in times.items()}}


def refused(token: str, **kwargs: Any) -> TokenError:
    with pytest.raises(TokenError) as caught:
        verify(token, secret=kwargs.pop("secret", SECRET), **kwargs)
    assert caught.value.status == 401
    return caught.value


# --------------------------------------------------------------------------- round trip


def test_round_trip_carries_role_sub_and_lifetime() -> None:
    claims = verify(mint(sub=USER, secret=SECRET), secret=SECRET)
    assert claims == {"role": "authenticated", "sub": USER, "iat": NOW, "exp": NOW + 3600}


def test_mint_options_and_extra_claims() -> None:
    token = mint(
        sub=None,
        role="service_role",
        ttl=60,
        secret=SECRET,
        aud="authenticated",
        extra={"email": "a@example.com", "iat": NOW - 5},
    )
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "HS256"
    assert verify(token, secret=SECRET, aud="authenticated") == {
        "role": "service_role",
        "iat": NOW - 5,
        "exp": NOW + 60,
        "aud": "authenticated",
        "email": "a@example.com",
    }


def test_other_hmac_algorithms_are_accepted_like_postgrest() -> None:
    # PostgREST takes the algorithm family from the key: any HS* verifies with the secret.
    for digest, alg in (("sha384", "HS384"), ("sha512", "HS512")):
        token = forge({"alg": alg, "typ": "JWT"}, claims_at(exp=60), digest=digest)
        assert verify(token, secret=SECRET)["sub"] == USER


# --------------------------------------------------------------------------- time claims


def test_expired_within_leeway_is_accepted() -> None:
    assert verify(mint(sub=USER, secret=SECRET, ttl=-30), secret=SECRET)["sub"] == USER


def test_expired_beyond_leeway_is_refused() -> None:
    error = refused(mint(sub=USER, secret=SECRET, ttl=-31))
    assert (error.code, error.message) == ("PGRST303", "JWT expired")


def test_leeway_is_configurable() -> None:
    token = mint(sub=USER, secret=SECRET, ttl=-5)
    assert refused(token, leeway=0).message == "JWT expired"


def test_nbf_in_the_future() -> None:
    assert verify(mint(sub=USER, secret=SECRET, extra={"nbf": NOW + 30}), secret=SECRET)
    error = refused(mint(sub=USER, secret=SECRET, extra={"nbf": NOW + 31}))
    assert (error.code, error.message) == ("PGRST303", "JWT not yet valid")


def test_iat_in_the_future_beyond_leeway() -> None:
    assert verify(mint(sub=USER, secret=SECRET, extra={"iat": NOW + 30}), secret=SECRET)
    error = refused(mint(sub=USER, secret=SECRET, extra={"iat": NOW + 31}))
    assert (error.code, error.message) == ("PGRST303", "JWT issued at future")


def test_time_claims_must_be_numbers() -> None:
    for name in ("exp", "nbf", "iat"):
        for bad in ("1800000000", True, [NOW]):
            error = refused(forge({"alg": "HS256"}, {**claims_at(), name: bad}))
            assert error.code == "PGRST303", (name, bad)
            assert error.message == f"The JWT '{name}' claim must be a number"


def test_no_time_claims_at_all_is_valid() -> None:
    assert verify(forge({"alg": "HS256"}, claims_at()), secret=SECRET)["sub"] == USER


# --------------------------------------------------------------------------- signature / format


def test_wrong_secret() -> None:
    error = refused(mint(sub=USER, secret=OTHER_SECRET))
    assert (error.code, error.message) == ("PGRST301", "JWT cryptographic operation failed")


def test_tampered_payload() -> None:
    header, _, signature = mint(sub=USER, secret=SECRET).split(".")
    forged_payload = b64url(json.dumps(claims_at(exp=60) | {"role": "service_role"}).encode())
    assert refused(f"{header}.{forged_payload}.{signature}").code == "PGRST301"


def test_alg_none_is_refused() -> None:
    payload = b64url(json.dumps(claims_at(exp=60)).encode())
    for header in ({"alg": "none", "typ": "JWT"}, {"typ": "JWT"}):
        token = f"{b64url(json.dumps(header).encode())}.{payload}."
        error = refused(token)
        assert (error.code, error.message) == (
            "PGRST301",
            "Wrong or unsupported encoding algorithm",
        )


def test_rs256_header_is_refused_even_if_hmac_signed_with_the_secret() -> None:
    # Algorithm confusion: the header must not choose how the secret is used.
    error = refused(forge({"alg": "RS256", "typ": "JWT"}, claims_at(exp=60)))
    assert (error.code, error.message) == ("PGRST301", "Wrong or unsupported encoding algorithm")


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "Empty JWT is sent in Authorization header"),
        ("garbage", "Expected 3 parts in JWT; got 1"),
        ("a.b", "Expected 3 parts in JWT; got 2"),
        ("a.b.c.d", "Expected 3 parts in JWT; got 4"),
        ("a.b.c", "JWT cryptographic operation failed"),
        ("!!!.???.***", "JWT cryptographic operation failed"),
    ],
)
def test_garbage(token: str, message: str) -> None:
    error = refused(token)
    assert (error.code, error.message) == ("PGRST301", message)


def test_payload_must_be_a_json_object() -> None:
    for payload in ([1, 2], "sub", 3):
        assert refused(forge({"alg": "HS256"}, payload)).code == "PGRST301"


# --------------------------------------------------------------------------- audience


def test_aud_is_ignored_when_not_configured() -> None:
    assert verify(mint(sub=USER, secret=SECRET, aud="someone-else"), secret=SECRET)


@pytest.mark.parametrize("claim", ["api", ["web", "api"], None, []])
def test_aud_accepted(claim: Any) -> None:
    token = forge({"alg": "HS256"}, {**claims_at(), "aud": claim})
    assert verify(token, secret=SECRET, aud="api")["sub"] == USER


def test_missing_aud_is_accepted_when_configured() -> None:
    assert verify(mint(sub=USER, secret=SECRET), secret=SECRET, aud="api")


@pytest.mark.parametrize("claim", ["web", ["web", "mobile"], "API"])
def test_aud_mismatch(claim: Any) -> None:
    error = refused(forge({"alg": "HS256"}, {**claims_at(), "aud": claim}), aud="api")
    assert (error.code, error.message) == ("PGRST303", "JWT not in audience")


def test_aud_of_the_wrong_type() -> None:
    error = refused(forge({"alg": "HS256"}, {**claims_at(), "aud": 7}), aud="api")
    assert error.code == "PGRST303"


# --------------------------------------------------------------------------- role resolution


def test_missing_role_means_anon() -> None:
    token = forge({"alg": "HS256"}, {"sub": USER})
    assert verify(token, secret=SECRET) == {"sub": USER, "role": "anon"}
    assert verify(token, secret=SECRET, anon_role="web_anon")["role"] == "web_anon"


def test_role_claim_path() -> None:
    payload = {"role": "authenticated", "app_metadata": {"roles": ["service_role"]}}
    token = forge({"alg": "HS256"}, payload)
    claims = verify(token, secret=SECRET, role_claim=".app_metadata.roles[0]")
    assert claims["role"] == "service_role"
    assert claims["app_metadata"] == payload["app_metadata"]
    assert verify(token, secret=SECRET, role_claim=".app_metadata.roles[1]")["role"] == "anon"


def test_non_string_role_is_json_encoded() -> None:
    token = forge({"alg": "HS256"}, {"role": ["a", "b"]})
    assert verify(token, secret=SECRET)["role"] == '["a","b"]'


# --------------------------------------------------------------------------- secret / error body


def test_short_secret_is_rejected() -> None:
    short = "x" * 31
    with pytest.raises(ValueError, match="at least 32 characters"):
        mint(sub=USER, secret=short)
    token = forge({"alg": "HS256"}, claims_at(), key=short)
    with pytest.raises(ValueError, match="at least 32 characters"):
        verify(token, secret=short)


def test_error_body_is_postgrest_shaped() -> None:
    error = refused(mint(sub=USER, secret=SECRET, ttl=-60))
    assert error.body() == {
        "code": "PGRST303",
        "details": None,
        "hint": None,
        "message": "JWT expired",
    }
    assert error.www_authenticate() == (
        'Bearer error="invalid_token", error_description="JWT expired"'
    )
