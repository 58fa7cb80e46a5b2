from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]


def test_healthz_reports_database_and_broker(db):
    response = Client().get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["broker"]["status"] == "ok"


def test_healthz_reports_an_unreachable_broker(db, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = Client().get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["status"] == "unreachable"


def test_openapi_schema_and_docs_are_served(db):
    client = Client()
    schema = client.get("/api/schema/?format=json")
    assert schema.status_code == 200
    assert "/api/v1/api-keys" in schema.json()["paths"]
    assert client.get("/api/docs/").status_code == 200


def test_unknown_api_paths_answer_in_the_error_shape(api):
    response = api.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "platform_site.settings.production",
    "SECRET_KEY": "x" * 30 + "a-long-random-production-secret-value-0123456789",
    "DISCREET_MASTER_KEY": "a-production-master-key-0123456789",
    "ALLOWED_HOSTS": "discreet.example.com",
    "DATABASE_URL": "sqlite:///:memory:",
    "CACHE_URL": "rediscache://127.0.0.1:6379/1",  # shared by the web processes (not opened)
    "EMAIL_URL": "smtp+tls://mailer:secret@smtp.example.com:587",
}


@pytest.mark.slow
def test_production_settings_pass_the_deploy_check():
    env = {**os.environ, **PRODUCTION_ENV}
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_production_refuses_to_boot_without_its_secrets():
    env = {k: v for k, v in {**os.environ, **PRODUCTION_ENV}.items()
           if k not in {"SECRET_KEY", "DISCREET_MASTER_KEY"}}
    result = _manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
