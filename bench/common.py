"""What every benchmark needs: a settings environment, Django in-process, and a PostgreSQL
database created afresh (or migrated, when a run reuses an earlier one's data)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bench_env(args: argparse.Namespace, **extra: str) -> dict[str, str]:
    """Environment of the benchmark's processes: ``args.pg``/``args.db`` name the database;
    ``extra`` adds or overrides variables (broker, queue, rates...)."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "platform_site.settings.local",
        "DJANGO_DEBUG": "false",
        "SECRET_KEY": "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "DISCREET_MASTER_KEY": "bench-only-master-key-0123456789abcdef",
        "DATABASE_URL": f"{args.pg}/{args.db}",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def migrate(env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],  # noqa: S603
                   cwd=ROOT, env=env, check=True)


def recreate_database(args: argparse.Namespace, env: dict[str, str]) -> None:
    """Drop and create ``args.db``, then migrate it."""
    import psycopg

    with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{args.db}"')
    migrate(env)
