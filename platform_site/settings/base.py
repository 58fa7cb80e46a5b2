"""Settings shared by every environment. Everything is read from the environment.

``local.py`` and ``test.py`` set development defaults *before* importing this module;
``production.py`` only tightens. Required secrets have no default here.
"""

from __future__ import annotations

from datetime import timedelta

from celery.schedules import crontab
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

from apps.core.queues import queue_names, task_routes
from platform_site.env import BASE_DIR, VAR_DIR, email_config, env


def _static(path: str) -> str:
    from django.templatetags.static import static

    return static(path)


SECRET_KEY = env.str("SECRET_KEY")
DISCREET_MASTER_KEY = env.str("DISCREET_MASTER_KEY")
# Earlier master keys, newest first, still accepted for decryption while secrets are
# re-encrypted (``manage.py rotate_master_key``).
DISCREET_MASTER_KEY_PREVIOUS = env.list("DISCREET_MASTER_KEY_PREVIOUS", default=[])
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "apps.console",  # first: its admin/index.html (the dashboard) wins over the theme's
    "unfold",  # django-unfold (MIT), the admin's theme; before django.contrib.admin
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "auditlog",
    "csp",
    "apps.core",
    "apps.tenants",
    "apps.audit",
    "apps.privacy",
    "apps.consent",
    "apps.events",
    "apps.modeling",
    "apps.retention",
    "apps.transparency",
    "apps.webhooks",
]

# The API's routes: authenticated by API keys, no cookies. The site's session, CSRF,
# authentication, admin-scope and messages middleware (the "site only" classes, Django's
# own subclassed) let their requests through untouched (apps/core/site_middleware.py).
API_PATH_PREFIXES = ["/api/v1/"]

MIDDLEWARE = [
    "apps.core.metrics.RequestMetricsMiddleware",  # first: counts every answer (README "Metrics")
    "django.middleware.security.SecurityMiddleware",
    "apps.core.middleware.RequestBodyLimitMiddleware",  # before anything reads a body
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "apps.core.site_middleware.SessionMiddleware",  # site only
    "django.middleware.common.CommonMiddleware",
    "apps.core.site_middleware.CsrfViewMiddleware",  # site only
    "apps.core.site_middleware.AuthenticationMiddleware",  # site only
    "apps.tenants.middleware.AdminTenantScopeMiddleware",  # site only; after auth: request.user
    "apps.core.site_middleware.MessageMiddleware",  # site only
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "apps.core.csp_policy.CSPMiddleware",  # django-csp, its policy text built once
    "apps.console.middleware.AdminScriptPolicyMiddleware",  # inside CSP: amends its policy
    "auditlog.middleware.AuditlogMiddleware",
]

# Django's CSRF deployment warning looks for its own class by name; apps.core checks ours.
SILENCED_SYSTEM_CHECKS = ["security.W003"]

ROOT_URLCONF = "platform_site.urls"
WSGI_APPLICATION = "platform_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "platform_site" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

_SQLITE_URL = f"sqlite:///{VAR_DIR / 'discreet.sqlite3'}"
DATABASES = {"default": env.db("DATABASE_URL", default=_SQLITE_URL)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + immediate transactions let the web server and the embedded worker share the
    # file without "database is locked" errors.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE",
         "timeout": 20}
    )
else:
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django's backend plus the row-level security setting (apps/tenants/rls.py).
        DATABASES["default"]["ENGINE"] = "apps.tenants.postgresql"
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if DATABASES["default"]["ENGINE"] == "apps.tenants.postgresql":
        # psycopg prepares a server-bound statement after this many runs on a connection
        # (apps.core.db.hot_statement_cursor: the key lookup and consent check of every API
        # request). Django's default cursors bind on the client and are never prepared.
        # "none" turns it off (a PgBouncer in transaction mode older than 1.21).
        _threshold = env.str("DATABASE_PREPARE_THRESHOLD", default="5").strip().lower()
        if _threshold not in ("", "none", "off") and not _threshold.isdigit():
            raise ImproperlyConfigured(
                f"DATABASE_PREPARE_THRESHOLD={_threshold!r}: a whole number or 'none'")
        DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = (
            None if _threshold in ("", "none", "off") else int(_threshold))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
# The privacy portal and the emails to subjects exist in these (apps/privacy/i18n.py picks
# one per request; apps/privacy/locale holds the catalogues). No LocaleMiddleware: the API
# and the admin stay in English and pay nothing for it.
LANGUAGES = [("en", "English"), ("de", "German"), ("fr", "French"), ("es", "Spanish")]
LANGUAGE_COOKIE_SAMESITE = "Lax"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=str(VAR_DIR / "static"))
MEDIA_ROOT = env.path("MEDIA_ROOT", default=str(VAR_DIR / "media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# A shared cache is needed for per-key throttling across processes: Redis in production.
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://discreet")}

# No default: production names its mail server (or discard://) and fails at boot without
# one; local.py and test.py set theirs. Nothing ever prints mail to the logs (env.py).
vars().update(email_config(env.str("EMAIL_URL")))  # not kept as a setting: it holds a password
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="privacy@localhost")

LOGIN_URL = "admin:login"
# The theme's login form posts no "next" field: without ?next=, land on the dashboard.
LOGIN_REDIRECT_URL = "admin:index"

# --- REST API -----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["apps.tenants.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["apps.tenants.throttling.ApiKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api_key": env.str("API_KEY_RATE", default="60000/min")},
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["apps.core.json.FastJSONParser"],
    # JSON only: no browsable API; the Accept header is parsed only when it is unusual.
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "apps.core.json.JSONContentNegotiation",
    "DEFAULT_PAGINATION_CLASS": "apps.core.pagination.CursorPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "apps.core.exceptions.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "apps.core.schema.DiscreetAutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Discreet API",
    "DESCRIPTION": "Privacy-first personalization: events, consent, recommendations and "
    "data-subject requests. Authenticate with `Authorization: Bearer <api key>`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",  # served locally: the docs work offline
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "ENFORCE_NON_BLANK_FIELDS": True,  # a text field that refuses "" says minLength: 1
    "ENUM_NAME_OVERRIDES": {
        "WebhookEventTypeEnum": "apps.webhooks.models.EventType",
        "PrivacyRequestStatusEnum": "apps.privacy.models.PrivacyRequest.Status",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.core.schema.add_error_responses",  # the shared error shape on every operation
    ],
}

# Request bodies (README "Security"): larger ones get 413 before anything parses them.
# Event batches may be big (1,000 events); every other request is small.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=1024 * 1024)
API_MAX_EVENTS_BODY_BYTES = env.int("API_MAX_EVENTS_BODY_BYTES", default=10 * 1024 * 1024)
# Reverse proxies in front of the web processes (addresses or CIDR networks, e.g.
# "10.0.0.0/8"): behind them the client is the address they saw (X-Forwarded-For, read from
# the right), so per-IP limits count real clients. Empty: REMOTE_ADDR is the client and
# X-Forwarded-For is ignored (a client could forge it).
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
# A dependency (database, Redis, broker) that is down answers 503 with this Retry-After.
DEPENDENCY_RETRY_AFTER_SECONDS = env.int("DEPENDENCY_RETRY_AFTER_SECONDS", default=30)

# Content-Security-Policy on every response (django-csp; README "Security"): scripts,
# fonts, images and requests only from this origin, no plugins, no framing, forms post here.
# No page has an inline script (the API docs use drf-spectacular's split Swagger view and
# the sidecar's local files). Inline *styles* stay allowed: the admin's own templates and
# ours set style attributes, which nonces cannot cover; CSS cannot run code.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, "'unsafe-inline'"],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# --- The console (README "Console") -----------------------------------------------------
# The admin's sidebar, by task: one list, (group, icon, entries); an entry is a model label
# ("privacy.privacyrequest") or an admin URL name ("admin:index"), optionally with a title
# and icon. Entries whose model is not registered, or that the user may not view, are left
# out (apps/console/navigation.py), so a new admin page is one line here.
CONSOLE_NAVIGATION: list[tuple[str, str, list[str | tuple[str, str, str]]]] = [
    ("Overview", "dashboard", [("admin:index", "Dashboard", "monitoring")]),
    ("Requests", "assignment", [
        "privacy.privacyrequest", "privacy.fulfilmentjob", "privacy.dataexport",
        "privacy.erasuretombstone", "privacy.portalsettings",
    ]),
    ("Consent", "verified_user", [
        "consent.purpose", "consent.privacynotice", "consent.consentrecord",
        "consent.consentstate", "consent.subjectstate",
    ]),
    ("Data", "database", [
        "events.event", "events.item", "events.eventtype", "events.eventproperty",
        "events.itemattribute", "events.historycapjob", "events.historycapstatus",
        "retention.retentionpolicy", "retention.retentionreceipt",
        "retention.retentionrun",
    ]),
    ("Models", "model_training", [
        "modeling.modelversion", "modeling.trainingrun", "modeling.privacybudgetentry",
        "modeling.subjectquarantine",
    ]),
    ("Settings", "settings", [
        "tenants.tenant", "tenants.membership", "tenants.apikey",
    ]),
    ("Audit", "history", [
        "audit.auditevent", "auditlog.logentry", "audit.auditchainverification",
    ]),
]
UNFOLD = {
    "SITE_TITLE": "Discreet",
    "SITE_HEADER": "Discreet",
    "SITE_SUBHEADER": "Tenant console",
    "SITE_URL": "/",  # "View site": the landing page (apps/console/views.py)
    "SITE_SYMBOL": "shield_person",
    "SHOW_HISTORY": True,
    "SHOW_VIEW_ON_SITE": False,  # no model has a public page
    "DASHBOARD_CALLBACK": "apps.console.dashboard.dashboard_callback",
    # The console's layout and its readable tables of JSON values (apps/core/display.py).
    "STYLES": [lambda request: _static("console/console.css")],
    "SIDEBAR": {
        "show_search": False,
        "show_all_applications": False,
        "navigation": "apps.console.navigation.sidebar_navigation",
    },
}

# --- Audit --------------------------------------------------------------------------------
AUDITLOG_DISABLE_REMOTE_ADDR = True  # no IP addresses anywhere (DESIGN: minimization)
AUDITLOG_INCLUDE_ALL_MODELS = False

# --- Celery (DESIGN.md "Tasks") ------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _BROKER_DIR = VAR_DIR / "broker"
    for _folder in ("queue", "processed", "control"):  # the transport does not create them
        (_BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_BROKER_DIR / "queue"),
        "data_folder_out": str(_BROKER_DIR / "queue"),
        "processed_folder": str(_BROKER_DIR / "processed"),
        "control_folder": str(_BROKER_DIR / "control"),  # default: ./control in the cwd
        "store_processed": False,
    }
else:
    # Longer than the longest task's hard limit, so Redis never redelivers a running task.
    # With acks_late, the message of a worker killed whole waits this long; the job row does
    # not: apps.core.jobs.reconcile_jobs re-sends it when a worker starts or beat sweeps.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 4 * 3600}
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
# One queue per workload (apps.core.queues): a worker without -Q consumes them all.
# Each queue its own exchange and routing key: a queue given by name alone binds to the
# default exchange and key, and a message for one would then reach every queue.
CELERY_TASK_QUEUES = [Queue(name, Exchange(name, type="direct"), routing_key=name)
                      for name in queue_names(CELERY_TASK_DEFAULT_QUEUE)]
CELERY_TASK_ROUTES = task_routes(CELERY_TASK_DEFAULT_QUEUE)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True  # results live on our own job rows, not in the broker
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True  # acks_late alone loses a task whose child is killed
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=3000)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=3600)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    # Re-enqueue durable jobs whose message was lost (broker restart, killed worker) or whose
    # worker is gone; every minute, so a job orphaned while other workers live waits <= 1 min.
    "sweep-stuck-jobs": {
        "task": "apps.core.tasks.sweep_stuck_jobs_task",
        "schedule": timedelta(seconds=env.int("JOB_SWEEP_INTERVAL_SECONDS", default=60)),
    },
    # Nightly proof that no audit entry was altered or removed.
    "verify-audit-chains": {
        "task": "apps.audit.tasks.schedule_audit_chain_verifications_task",
        "schedule": crontab(hour=3, minute=17),
    },
    # Nightly retrain of every tenant's model, on the consent state of that night: models
    # follow new data, withdrawals and retention without anyone asking.
    "train-models-nightly": {
        "task": "apps.modeling.tasks.schedule_training_task",
        "schedule": crontab(hour=2, minute=41),
    },
    # Retrains debounced after erasures and withdrawals: each minute, start those whose
    # tenant's delay (model_retrain_debounce_seconds, default 5 min) has passed.
    "start-due-retrains": {
        "task": "apps.modeling.tasks.start_due_retrains_task",
        "schedule": timedelta(seconds=env.int("RETRAIN_CHECK_INTERVAL_SECONDS", default=60)),
    },
    # Retention (issue 7): each tenant gets one retention run a day, at its run time
    # (RETENTION_RUN_TIME, "HH:MM" UTC, default 03:30; per tenant the "retention_run_time"
    # setting). This only starts runs whose time has passed, so checking every quarter of an
    # hour makes a run missed while beat was down start soon after it is back.
    "schedule-retention-runs": {
        "task": "apps.retention.tasks.schedule_retention_runs_task",
        "schedule": crontab(minute="*/15"),
    },
    # Privacy requests: tell tenant staff each morning which requests are overdue, at risk
    # or awaiting their CCPA acknowledgment (the law's clocks run on calendar days).
    "privacy-deadline-reminders": {
        "task": "apps.privacy.tasks.send_deadline_reminders_task",
        "schedule": crontab(hour=7, minute=5),
    },
    # Privacy housekeeping, hourly: export files go 7 days after they are made (to the
    # hour), spent links and sessions are pruned, never-verified portal requests rejected,
    # and erasure receipts still saying "model update pending" are checked again (the
    # backstop of the check every model activation triggers).
    "privacy-housekeeping": {
        "task": "apps.privacy.tasks.privacy_housekeeping_task",
        "schedule": crontab(minute=23),
    },
}

# Every handler masks subject ids, email addresses and portal tokens, in messages and
# tracebacks (apps/core/pii.py; README "Security"): request lines print paths, a failed
# mail's exception names its recipients.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"mask_personal_data": {"()": "apps.core.pii.MaskPersonalDataFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain",
                    "filters": ["mask_personal_data"]},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        name: {"handlers": ["console"], "level": "INFO", "propagate": False}
        for name in ("django.request", "django.server", "gunicorn.access", "gunicorn.error")
    },
}

# Audit trail (issue 14): signed chain heads are appended, one JSON-lines file per tenant,
# outside the database. Point it at append-only storage the database's users cannot rewrite.
AUDIT_HEADS_DIR = env.str("AUDIT_HEADS_DIR", default=str(VAR_DIR / "audit-heads"))
# Daily, before the nightly verification: export every tenant's verified chain head.
CELERY_BEAT_SCHEDULE["export-audit-heads"] = {
    "task": "apps.audit.tasks.export_audit_heads_task",
    "schedule": crontab(hour=3, minute=7),
}
# Also mail each newly exported head to the tenant's owners (a copy out of the operators' reach).
AUDIT_HEADS_MAIL_OWNERS = env.bool("AUDIT_HEADS_MAIL_OWNERS", default=False)

# Erasure tombstones are also appended here, encrypted under the master key, outside the
# database: a restore of an older dump loses the rows, not this (README, restore runbook).
TOMBSTONE_DIR = env.path("TOMBSTONE_DIR", default=str(VAR_DIR / "tombstones"))

# --- Webhooks (README "Webhooks") -------------------------------------------------------------
# Endpoints must be https (on unless DEBUG) and resolve to public addresses only (SSRF);
# loopback is allowed only where WEBHOOK_ALLOW_LOOPBACK is on (tests, development).
WEBHOOK_REQUIRE_HTTPS = env.bool("WEBHOOK_REQUIRE_HTTPS", default=not DEBUG)
WEBHOOK_ALLOW_LOOPBACK = env.bool("WEBHOOK_ALLOW_LOOPBACK", default=False)
# Retries: exponential backoff from the base (doubling, capped, with jitter) for 24 hours.
WEBHOOK_BACKOFF_BASE_SECONDS = env.float("WEBHOOK_BACKOFF_BASE_SECONDS", default=30.0)
WEBHOOK_BACKOFF_MAX_SECONDS = env.float("WEBHOOK_BACKOFF_MAX_SECONDS", default=4 * 3600.0)
WEBHOOK_RETRY_WINDOW_SECONDS = env.int("WEBHOOK_RETRY_WINDOW_SECONDS", default=24 * 3600)
# A retry due within this many seconds is a broker countdown; later ones the job sweeper
# sends when due (keep it well under the broker's visibility timeout).
WEBHOOK_COUNTDOWN_MAX_SECONDS = env.int("WEBHOOK_COUNTDOWN_MAX_SECONDS", default=900)
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=10.0)
WEBHOOK_DNS_TIMEOUT_SECONDS = env.float("WEBHOOK_DNS_TIMEOUT_SECONDS", default=2.0)

# --- Metrics (README "Metrics") -------------------------------------------------------------
# /metrics needs "Authorization: Bearer <METRICS_TOKEN>" when the token is set; without one
# it answers only clients in METRICS_ALLOWED_NETWORKS (REMOTE_ADDR, never X-Forwarded-For).
# With several web processes set PROMETHEUS_MULTIPROC_DIR (read by prometheus_client).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS",
                                    default=["127.0.0.0/8", "::1/128"])
