"""The container setup cannot be run here (no Docker engine); check what can be checked."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"


def test_compose_defines_the_stack_with_health_checks():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"proxy", "web", "worker", "worker-training", "beat", "postgres",
                             "redis"}
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no health check"
    for name in ("web", "worker", "worker-training", "beat"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://")
        assert env["CELERY_BROKER_URL"].startswith("redis://")
        assert ":?" in env["SECRET_KEY"], "production secrets must have no default"
        assert ":?" in env["DISCREET_MASTER_KEY"]
        assert ":?" in env["EMAIL_URL"], "no mail default: the console one printed links"
        assert env["CACHE_URL"].startswith("rediscache://"), "rate limits need a shared cache"
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_the_image_runs_gunicorn_as_a_non_root_user():
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, re.MULTILINE)
    assert re.search(r"^USER discreet$", dockerfile, re.MULTILINE)
    assert "gunicorn" in (DOCKER / "entrypoints" / "web.sh").read_text()
    for script in (DOCKER / "entrypoints").glob("*.sh"):
        assert script.stat().st_mode & 0o111, f"{script.name} is not executable"
        assert "exec " in script.read_text()


def test_the_application_connects_as_a_role_that_row_level_security_binds():
    """The stack's app containers use discreet_app (created by the init script: no
    superuser, no BYPASSRLS, not the owner); only the web container's migrations run as
    the tables' owner (README "Security")."""
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    for name in ("web", "worker", "beat"):
        assert services[name]["environment"]["DATABASE_URL"].startswith("postgres://discreet_app:")
        assert ("MIGRATE_DATABASE_URL" in services[name]["environment"]) == (name == "web")
    owner = compose["services"]["postgres"]["environment"]["POSTGRES_USER"]
    assert services["web"]["environment"]["MIGRATE_DATABASE_URL"].startswith(f"postgres://{owner}:")
    assert 'DATABASE_URL="${MIGRATE_DATABASE_URL:-$DATABASE_URL}" python manage.py migrate' in (
        DOCKER / "entrypoints" / "web.sh").read_text()
    init = "./postgres/10-app-role.sh:/docker-entrypoint-initdb.d/10-app-role.sh:ro"
    assert init in services["postgres"]["volumes"]
    script = (DOCKER / "postgres" / "10-app-role.sh").read_text()
    assert "CREATE ROLE discreet_app LOGIN NOSUPERUSER NOBYPASSRLS" in script
    assert "ALTER DEFAULT PRIVILEGES FOR ROLE :\"owner\"" in script
