"""Environment access for settings (12-factor, STYLE S14).

The embedded default must run on a fresh machine with no configuration, so development
secrets are generated once into ``var/secrets.json``; production settings never call that.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("DISCREET_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()


def local_secret(name: str) -> str:
    """Return ``name`` from the environment, else a value generated once into var/.

    Only the embedded default (local/test settings) uses this; production reads secrets
    with no default so a misconfigured deploy fails at boot.
    """
    if name in env:
        return env.str(name)
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    path = VAR_DIR / "secrets.json"
    stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    if name not in stored:
        stored[name] = secrets.token_urlsafe(48)
        path.write_text(json.dumps(stored, indent=2))
        path.chmod(0o600)
    return stored[name]
