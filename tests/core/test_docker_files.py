"""The container setup cannot be run here (no Docker engine); check what can be checked."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"


def test_compose_defines_the_stack_with_health_checks():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"web", "worker", "beat", "postgres", "redis"}
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no health check"
    for name in ("web", "worker", "beat"):
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
