"""``make run``: migrate, seed the demo tenant, then run web + worker + beat together."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Run the platform on the embedded defaults (no external service). Ctrl-C stops all."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--no-seed", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("Database migrated.")
        if settings.CELERY_BROKER_URL.startswith("filesystem://"):
            for folder in ("data_folder_in", "processed_folder"):
                os.makedirs(settings.CELERY_BROKER_TRANSPORT_OPTIONS[folder], exist_ok=True)
        base_url = f"http://{options['host']}:{options['port']}"
        banner = io.StringIO()
        if not options["no_seed"]:
            self.stdout.write("Seeding the demo tenant...")
            call_command("seed_demo", base_url=base_url, stdout=banner)
        python = sys.executable
        celery = [python, "-m", "celery", "-A", "platform_site"]
        commands = {
            "web": [python, "manage.py", "runserver", "--noreload",
                    f"{options['host']}:{options['port']}"],
            "worker": [*celery, "worker", "--loglevel=INFO", "--concurrency=2",
                       "--without-mingle", "--without-gossip"],
            "beat": [*celery, "beat", "--loglevel=INFO"],
        }
        processes = {name: subprocess.Popen(cmd) for name, cmd in commands.items()}  # noqa: S603
        time.sleep(3)  # let the processes print their start-up lines before the banner
        rule = "=" * 78
        outbox = ""
        if settings.EMAIL_BACKEND.endswith("filebased.EmailBackend"):
            # Mail (portal verification and download links) is never printed to the logs.
            outbox = f"Outgoing email is written to files in {settings.EMAIL_FILE_PATH}/\n"
        self.stdout.write(f"\n{rule}\n{banner.getvalue().rstrip()}\n{outbox}"
                          f"Serving on {base_url}/ (web, worker, beat). Ctrl-C stops all.\n{rule}")
        stopping = False

        def stop(*_: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            while not stopping:
                exited = [n for n, p in processes.items() if p.poll() is not None]
                if exited:
                    self.stderr.write(f"{', '.join(exited)} exited; stopping the rest.")
                    break
                time.sleep(0.5)
        finally:
            for process in processes.values():
                if process.poll() is None:
                    process.terminate()
            deadline = time.monotonic() + 10
            for process in processes.values():
                try:
                    process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    process.kill()
        self.stdout.write("Stopped.")
