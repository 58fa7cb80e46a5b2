"""The package and the Docker stack are what the README says they are.

``docker/compose.yaml`` is checked with ``docker compose config`` where the Compose plugin is
installed, and always against the Compose Specification's own JSON schema
(``compose-spec.json``, vendored from github.com/compose-spec/compose-spec, Apache-2.0: the
schema ``docker compose`` validates with), after the same variable interpolation.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from apps.core.queues import Workload, queue_names, workload_queue

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker" / "compose.yaml"
ENV = {"SECRET_KEY": "s" * 50, "DISCREET_MASTER_KEY": "m" * 44, "EMAIL_URL": "discard://"}
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def _interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}`` and ``${VAR:?error}``."""
    if isinstance(value, dict):
        return {key: _interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        current = env.get(name)
        if op == ":?" and not current:
            raise ValueError(f"required variable {name} is missing: {arg}")
        if op == ":-" and not current:
            return arg
        if op == "-" and current is None:
            return arg
        return current or ""

    return _VARIABLE.sub(substitute, value)


def _compose(env: dict[str, str]) -> dict[str, Any]:
    raw = yaml.safe_load(COMPOSE.read_text())  # resolves the YAML merge keys (<<: *app)
    return _interpolate(raw, env)


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    schema = json.loads((Path(__file__).parent / "compose-spec.json").read_text())
    config = _compose(ENV)
    jsonschema.Draft7Validator(schema).validate(config)
    for name, service in config["services"].items():
        for dependency in service.get("depends_on", {}):
            assert dependency in config["services"], f"{name} depends on unknown {dependency}"


def test_compose_refuses_to_start_without_its_secrets() -> None:
    with pytest.raises(ValueError, match="SECRET_KEY"):
        _compose({key: value for key, value in ENV.items() if key != "SECRET_KEY"})


@pytest.mark.skipif(not shutil.which("docker"), reason="no docker CLI")
def test_docker_compose_config_validates_where_the_plugin_is_installed() -> None:
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("the Docker Compose plugin is not installed (the schema test above runs)")
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"],
        env={**os.environ, **ENV}, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_compose_files_it_names_exist() -> None:
    config = _compose(ENV)
    compose_dir = COMPOSE.parent
    for name, service in config["services"].items():
        if "build" in service:
            context = (compose_dir / service["build"]["context"]).resolve()
            assert (context / service["build"]["dockerfile"]).is_file(), name
        command = service.get("command") or []
        if command and command[0].startswith("docker/"):
            assert (ROOT / command[0]).is_file(), f"{name}: {command[0]}"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (compose_dir / source).exists(), f"{name}: {source}"


def test_tls_ends_at_the_proxy_and_web_is_reached_only_through_it() -> None:
    config = _compose(ENV)
    services = config["services"]
    assert "ports" not in services["web"], "web must not publish a port past the TLS proxy"
    published = {port.split(":")[-1] for port in services["proxy"]["ports"]}
    assert {"80", "443"} <= published
    caddyfile = (COMPOSE.parent / "caddy" / "Caddyfile").read_text()
    assert "reverse_proxy web:8000" in caddyfile
    # Web trusts forwarded headers from the compose network only, and that is its subnet.
    subnet = config["networks"]["backend"]["ipam"]["config"][0]["subnet"]
    assert services["web"]["environment"]["TRUSTED_PROXIES"] == subnet
    assert services["web"]["environment"]["SECURE_SSL_REDIRECT"] == "true"


def test_every_queue_has_a_worker_and_training_has_its_own() -> None:
    config = _compose(ENV)
    consumed: dict[str, set[str]] = {}
    for name, service in config["services"].items():
        if service.get("command") == ["docker/entrypoints/worker.sh"]:
            queues = service["environment"]["CELERY_QUEUES"].split(",")
            consumed[name] = set(queues)
    all_queues = set(queue_names("celery"))
    assert set().union(*consumed.values()) == all_queues
    training = workload_queue("celery", Workload.TRAINING)
    privacy = workload_queue("celery", Workload.PRIVACY)
    for queues in consumed.values():
        assert not (training in queues and privacy in queues), (
            "one worker takes training and privacy requests: a fit would delay an erasure")


def test_package_metadata_names_its_licence_in_spdx() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text
    assert "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
