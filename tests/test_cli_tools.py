"""`dpp-batches token` and `dpp-batches call` (cli_tools), registered the way cli.py does."""

from __future__ import annotations

import argparse
import json
import uuid
from typing import Any

import pytest

from dpp_batches import tokens
from dpp_batches.cli_tools import COMMANDS

SECRET = "cli-test-secret-of-at-least-32-characters"
USER = "7d0b6a52-1c3e-4f5a-9b8c-0d1e2f3a4b5c"
# Nothing listens on port 1: any attempt to reach the database would fail loudly.
UNREACHABLE_DSN = "postgresql://nobody@127.0.0.1:1/nowhere?connect_timeout=2"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="dpp-batches")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, add_arguments, run_command in COMMANDS:
        add_arguments(commands.add_parser(name))
        commands.choices[name].set_defaults(run=run_command)
    args = parser.parse_args(argv)
    code = args.run(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JWT_SECRET", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)


def response(out: str) -> tuple[str, Any]:
    status, _, body = out.partition("\n")
    return status, json.loads(body) if body.strip() else None


# --------------------------------------------------------------------------- token


def test_token_round_trips_through_verify(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "token", "--sub", USER, "--ttl", "120", "--secret", SECRET)
    assert (code, err) == (0, "")
    claims = tokens.verify(out.strip(), secret=SECRET)
    assert claims["sub"] == USER and claims["role"] == "authenticated"
    assert claims["exp"] - claims["iat"] == 120
    assert "aud" not in claims


def test_token_from_env_secret_with_role_and_aud(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JWT_SECRET", SECRET)
    code, out, _ = run(capsys, "token", "--role", "service_role", "--aud", "authenticated")
    assert code == 0
    claims = tokens.verify(out.strip(), secret=SECRET, aud="authenticated")
    assert claims["role"] == "service_role" and claims["aud"] == "authenticated"
    assert "sub" not in claims


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["token", "--sub", USER], "no JWT secret"),
        (["token", "--sub", USER, "--secret", "too-short"], "at least 32 characters"),
        (["token", "--secret", SECRET], "needs --sub"),
    ],
)
def test_token_usage_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and message in err


def test_token_rejects_a_non_uuid_sub(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        run(capsys, "token", "--sub", "alice", "--secret", SECRET)
    assert exited.value.code == 2
    assert "not a UUID" in capsys.readouterr().err


# ----------------------------------------------------------------------- call, no database


def test_call_with_a_bad_token_answers_401_without_the_database(
    capsys: pytest.CaptureFixture[str],
) -> None:
    forged = tokens.mint(sub=USER, secret="some-other-secret-of-32-characters!")
    code, out, err = run(
        capsys, "call", "create_brand", '{"_name": "Acme"}', "--dsn", UNREACHABLE_DSN,
        "--token", forged, "--secret", SECRET,
    )  # fmt: skip
    assert (code, err) == (1, "")
    assert response(out) == (
        "HTTP 401",
        {
            "code": "PGRST301",
            "details": None,
            "hint": None,
            "message": "JWT cryptographic operation failed",
        },
    )


def test_call_with_an_expired_token_answers_pgrst303(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JWT_SECRET", SECRET)
    monkeypatch.setenv("DATABASE_URL", UNREACHABLE_DSN)
    expired = tokens.mint(sub=USER, secret=SECRET, ttl=-60)
    code, out, _ = run(capsys, "call", "list_product_batches", "--get", "--token", expired)
    status, body = response(out)
    assert (code, status, body["code"], body["message"]) == (
        1,
        "HTTP 401",
        "PGRST303",
        "JWT expired",
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["call", "create_brand", "--service"], "no database"),
        (["call", "create_brand", "--service", "--dsn", UNREACHABLE_DSN, "--secret", SECRET],
         "only with --token"),
        (["call", "create_brand", "--token", "x.y.z", "--dsn", UNREACHABLE_DSN], "no JWT secret"),
        (["call", "f", "[1]", "--get", "--anon", "--dsn", UNREACHABLE_DSN], "must be an object"),
        (["call", "f", "{", "--get", "--anon", "--dsn", UNREACHABLE_DSN], "must be an object"),
    ],
)  # fmt: skip
def test_call_usage_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and message in err


def test_call_needs_exactly_one_caller(capsys: pytest.CaptureFixture[str]) -> None:
    for callers in ([], ["--service", "--anon"]):
        with pytest.raises(SystemExit) as exited:
            run(capsys, "call", "create_brand", "--dsn", UNREACHABLE_DSN, *callers)
        assert exited.value.code == 2


def test_call_help_explains_the_authenticator_dsn(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run(capsys, "call", "--help")
    text = " ".join(capsys.readouterr().out.split())
    assert "NOINHERIT login role" in text and "SET ROLE" in text


# --------------------------------------------------------------------------- call end to end


def test_call_create_brand_as_service(
    capsys: pytest.CaptureFixture[str], authenticator_dsn: str
) -> None:
    code, out, err = run(
        capsys, "call", "create_brand", '{"_name": "Acme"}', "--service", "--dsn", authenticator_dsn
    )
    status, body = response(out)
    assert (code, status, err) == (0, "HTTP 200", "")
    assert body["name"] == "Acme"
    uuid.UUID(body["id"])


def test_call_create_brand_with_a_service_token(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    authenticator_dsn: str,
) -> None:
    monkeypatch.setenv("JWT_SECRET", SECRET)
    monkeypatch.setenv("DATABASE_URL", authenticator_dsn)
    code, token, _ = run(capsys, "token", "--role", "service_role")
    assert code == 0
    code, out, _ = run(
        capsys, "call", "create_brand", '{"_name": "Via token"}', "--token", token.strip()
    )
    status, body = response(out)
    assert (code, status, body["name"]) == (0, "HTTP 200", "Via token")


def test_call_create_brand_as_anon_is_401(
    capsys: pytest.CaptureFixture[str], authenticator_dsn: str
) -> None:
    code, out, _ = run(
        capsys, "call", "create_brand", '{"_name": "Acme"}', "--anon", "--dsn", authenticator_dsn
    )
    status, body = response(out)
    assert (code, status) == (1, "HTTP 401")
    assert body["code"] == "PT401" and body["message"].startswith("Not authenticated")


def test_call_get_runs_read_only(
    capsys: pytest.CaptureFixture[str], authenticator_dsn: str
) -> None:
    # create_brand writes, so under GET's READ ONLY transaction PostgreSQL raises 25006 -> 405;
    # a 404 here would mean the arguments did not reach the function as named arguments.
    code, out, _ = run(
        capsys, "call", "create_brand", '{"_name": "Acme"}', "--get", "--service",
        "--dsn", authenticator_dsn,
    )  # fmt: skip
    status, body = response(out)
    assert (code, status, body["code"]) == (1, "HTTP 405", "25006")


def test_call_create_brand_as_a_user_is_403(
    capsys: pytest.CaptureFixture[str], authenticator_dsn: str
) -> None:
    code, out, _ = run(
        capsys, "call", "create_brand", '{"_name": "Acme"}', "--as", USER,
        "--dsn", authenticator_dsn,
    )  # fmt: skip
    status, body = response(out)
    assert (code, status, body["code"]) == (1, "HTTP 403", "42501")
