"""bench/serve.py's WSGI entry: the platform's own (``platform_site.wsgi``: Django, the
URLconf imported, ``gc.freeze()``), on the settings the environment names."""

from platform_site.wsgi import application  # noqa: F401
