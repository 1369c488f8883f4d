"""docker-compose.yml is right by construction: this machine has no Docker engine to run it.

Checks the topology (services, images, start order), that nothing is published beyond
127.0.0.1, that no secret is written into the file, that every `${VAR}` is documented in
.env.example, and that every PGRST_* variable is a real PostgREST setting.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

# PostgREST configuration names, from its configuration reference
# (docs/references/configuration.rst, v12.2 and v13.0), limited to settings present in both.
# `app.settings.<name>` is an open family.
POSTGREST_SETTINGS = frozenset(
    {
        "admin-server-port",
        "db-aggregates-enabled",
        "db-anon-role",
        "db-channel",
        "db-channel-enabled",
        "db-config",
        "db-extra-search-path",
        "db-hoisted-tx-settings",
        "db-max-rows",
        "db-plan-enabled",
        "db-pool",
        "db-pool-acquisition-timeout",
        "db-pool-automatic-recovery",
        "db-pool-max-idletime",
        "db-pool-max-lifetime",
        "db-pre-config",
        "db-pre-request",
        "db-prepared-statements",
        "db-root-spec",
        "db-schemas",
        "db-tx-end",
        "db-uri",
        "jwt-aud",
        "jwt-cache-max-lifetime",
        "jwt-role-claim-key",
        "jwt-secret",
        "jwt-secret-is-base64",
        "log-level",
        "openapi-mode",
        "openapi-security-active",
        "openapi-server-proxy-uri",
        "server-cors-allowed-origins",
        "server-host",
        "server-port",
        "server-timing-enabled",
        "server-trace-header",
        "server-unix-socket",
        "server-unix-socket-mode",
    }
)

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}
REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN", "KEY")


def postgrest_setting(env_name: str) -> str | None:
    """PGRST_DB_ANON_ROLE -> db-anon-role (PostgREST's env convention); None if not a setting."""
    if not env_name.startswith("PGRST_"):
        return None
    rest = env_name.removeprefix("PGRST_")
    if rest.startswith("APP_SETTINGS_") and len(rest) > len("APP_SETTINGS_"):
        return "app.settings." + rest.removeprefix("APP_SETTINGS_").lower()
    name = rest.lower().replace("_", "-")
    return name if name in POSTGREST_SETTINGS else None


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result = compose["services"]
    assert isinstance(result, dict)
    return result


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def depends(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on", {})
    assert isinstance(deps, dict), "use the long depends_on form, with conditions"
    return {name: spec["condition"] for name, spec in deps.items()}


def env_example() -> dict[str, str]:
    pairs = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


# --------------------------------------------------------------------------- topology


def test_services(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == {"db", "migrate", "rest", "rest-ready"}
    assert services["db"]["image"] == "postgres:15"
    assert services["migrate"]["image"] == "python:3.11-slim"
    assert services["rest-ready"]["image"] == "python:3.11-slim"
    assert services["rest-ready"].get("profiles"), "the probe must not start with `up`"


def test_postgrest_image_is_v12_2_12_or_later(services: dict[str, dict[str, Any]]) -> None:
    match = re.fullmatch(r"postgrest/postgrest:v(\d+)\.(\d+)\.(\d+)", services["rest"]["image"])
    assert match, "pin an exact PostgREST release"
    assert tuple(int(part) for part in match.groups()) >= (12, 2, 12)


def test_db_has_pg_isready_healthcheck_and_named_volume(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    db = services["db"]
    test = db["healthcheck"]["test"]
    assert test[0] in {"CMD", "CMD-SHELL"} and "pg_isready" in " ".join(test[1:])
    # TCP, so the image's socket-only first-boot server does not count as ready
    assert "127.0.0.1" in " ".join(test[1:])
    volume = db["volumes"][0].split(":")
    assert volume[1] == "/var/lib/postgresql/data"
    assert volume[0] in compose["volumes"], "the data directory must be a named volume"


def test_start_order(services: dict[str, dict[str, Any]]) -> None:
    assert depends(services["db"]) == {}
    assert depends(services["migrate"]) == {"db": "service_healthy"}
    assert depends(services["rest"]) == {
        "db": "service_healthy",
        "migrate": "service_completed_successfully",
    }
    assert depends(services["rest-ready"]) == {"rest": "service_started"}


def test_migrate_is_a_one_shot_install_migrate_authenticator(
    services: dict[str, dict[str, Any]],
) -> None:
    migrate = services["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["volumes"] == [
        {"type": "bind", "source": ".", "target": "/src", "read_only": True}
    ]
    script = "\n".join(migrate["command"])
    steps = [
        "python -m venv /opt/dpp",
        "/opt/dpp/bin/pip install --quiet /src",
        "/opt/dpp/bin/dpp-batches migrate",
        "/opt/dpp/bin/dpp-batches authenticator",
    ]
    positions = [script.find(step) for step in steps]
    assert -1 not in positions and positions == sorted(positions), script
    assert migrate["command"][:2] == ["sh", "-ec"], "a failed step must fail the service"
    env = environment(migrate)
    assert env["DATABASE_URL"] == "postgresql://postgres@db:5432/postgres"
    assert env["AUTHENTICATOR_PASSWORD"].startswith("${AUTHENTICATOR_PASSWORD:?")


def test_postgrest_environment(services: dict[str, dict[str, Any]]) -> None:
    env = environment(services["rest"])
    password = REFERENCE.fullmatch(
        env["PGRST_DB_URI"]
        .removeprefix("postgres://authenticator:")
        .removesuffix("@db:5432/postgres")
    )
    assert password and password.group(1) == "AUTHENTICATOR_PASSWORD", env["PGRST_DB_URI"]
    assert env["PGRST_DB_SCHEMAS"] == "public"
    assert env["PGRST_DB_ANON_ROLE"] == "anon"
    assert env["PGRST_DB_EXTRA_SEARCH_PATH"] == "public"
    assert env["PGRST_ADMIN_SERVER_PORT"] == "3001"
    secret = REFERENCE.fullmatch(env["PGRST_JWT_SECRET"])
    assert secret and secret.group(1, 2) == ("JWT_SECRET", ":?"), "JWT_SECRET must be required"


def test_readiness_probe_targets_the_admin_port(services: dict[str, dict[str, Any]]) -> None:
    # the postgrest image has no shell: readiness is probed from a sidecar, not in-container
    assert services["rest"]["healthcheck"] == {"disable": True}
    probe = "\n".join(services["rest-ready"]["command"])
    port = environment(services["rest"])["PGRST_ADMIN_SERVER_PORT"]
    assert f"http://rest:{port}/ready" in probe


# --------------------------------------------------------------------------- exposure, secrets


def published(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host_ip, container_port) for every published port, short or long syntax."""
    result = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            result.append((str(port.get("host_ip", "")), str(port["target"])))
            continue
        # [[host_ip:]host_port:]container_port[/proto]; host_port may be ${VAR:-default}
        parts = re.sub(r"\$\{[^}]*\}", "VAR", str(port)).split(":")
        host_ip = parts[0] if len(parts) == 3 else ""
        result.append((host_ip, parts[-1].split("/")[0]))
    return result


def test_every_published_port_is_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    ports = {name: published(svc) for name, svc in services.items()}
    assert ports["db"] == [("127.0.0.1", "5432")]
    assert ports["rest"] == [("127.0.0.1", "3000"), ("127.0.0.1", "3001")]
    for name, service in services.items():
        assert all(ip == "127.0.0.1" for ip, _ in ports[name]), (name, ports[name])
        assert service.get("network_mode") != "host", name


def test_loopback_check_catches_open_ports() -> None:
    assert published({"ports": ["3000:3000"]}) == [("", "3000")]
    assert published({"ports": ["3000"]}) == [("", "3000")]
    assert published({"ports": ["${P:-3000}:3000"]}) == [("", "3000")]
    assert published({"ports": ["0.0.0.0:${P:-3000}:3000/tcp"]}) == [("0.0.0.0", "3000")]
    assert published({"ports": [{"target": 3000, "published": 3000}]}) == [("", "3000")]


def test_no_literal_secrets(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for key, value in environment(service).items():
            if any(word in key for word in SECRET_WORDS):
                assert REFERENCE.fullmatch(value), f"{name}.{key} must be a ${{VAR}} reference"
            # a password inside a connection URI must be a reference too
            for userinfo in re.findall(r"://([^@/\s]+)@", value):
                _, colon, password = userinfo.partition(":")
                if colon:
                    assert REFERENCE.fullmatch(password), f"{name}.{key} embeds a password"


def test_variables_are_documented_in_env_example() -> None:
    text = COMPOSE_FILE.read_text()
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    referenced = {m.group(1) for m in REFERENCE.finditer(body)}
    # compose interpolates $VAR too; this file uses only ${VAR} (and no $$ escapes)
    assert "$" not in REFERENCE.sub("", body), "unbraced $ in docker-compose.yml"
    assert referenced == set(env_example())


def test_env_example_placeholders() -> None:
    values = env_example()
    assert {"JWT_SECRET", "POSTGRES_PASSWORD", "AUTHENTICATOR_PASSWORD"} <= set(values)
    for key, value in values.items():
        if any(word in key for word in SECRET_WORDS):
            assert value.startswith("replace-me"), f"{key} must be an obvious placeholder"
    assert len(values["JWT_SECRET"].encode()) >= 32  # PostgREST refuses shorter secrets
    for key in ("DB_PORT", "REST_PORT", "REST_ADMIN_PORT"):
        assert values[key].isdigit()
    assert ".env" in (ROOT / ".gitignore").read_text().split()


# --------------------------------------------------------------------------- PostgREST names


def test_every_pgrst_variable_is_a_postgrest_setting(services: dict[str, dict[str, Any]]) -> None:
    names = [key for key in environment(services["rest"]) if key.startswith("PGRST_")]
    assert names
    unknown = [key for key in names if postgrest_setting(key) is None]
    assert unknown == [], f"not PostgREST settings: {unknown}"
    for name, service in services.items():
        if name != "rest":
            assert not [key for key in environment(service) if key.startswith("PGRST_")], name


@pytest.mark.parametrize(
    ("env_name", "setting"),
    [
        ("PGRST_DB_URI", "db-uri"),
        ("PGRST_JWT_ROLE_CLAIM_KEY", "jwt-role-claim-key"),
        ("PGRST_APP_SETTINGS_JWT_EXP", "app.settings.jwt_exp"),
        ("PGRST_JWT_SECRETS", None),
        ("PGRST_DB_ANON_ROL", None),
        ("PGRST_DB_SCHEMA_", None),
        ("PGRST_APP_SETTINGS_", None),
        ("POSTGREST_DB_URI", None),
    ],
)
def test_setting_name_mapping(env_name: str, setting: str | None) -> None:
    assert postgrest_setting(env_name) == setting
