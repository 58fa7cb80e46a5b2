"""bench/serve.py's gunicorn settings: production's, with the floor view's URLconf."""

from platform_site.settings.production import *  # noqa: F403

ROOT_URLCONF = "serve_urls"
