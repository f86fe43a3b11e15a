"""Settings, all from the environment, with embedded defaults that need no service at all.

Embedded default: SQLite (WAL) for the data, a second SQLite file for the cross-process channel
layer (channels-lite), and django-q2's ORM broker. ``DATABASE_URL`` switches the database,
``REDIS_URL`` switches both the channel layer and the task broker to Redis.
"""

import hmac
import os
from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF

from agentproj import budget_default, secret_key

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

# Where the embedded default keeps its files: the SQLite databases and the generated secret key.
DATA_DIR = Path(env("DATA_DIR", default=str(BASE_DIR))).resolve()

# Never a key from the repository: without SECRET_KEY, the first process generates one and every
# process of the deployment (web, workers, commands) reads the same file.
SECRET_KEY = env("SECRET_KEY", default="") or secret_key.load_or_create(DATA_DIR)

# prometheus-client's multiprocess mode (agentproj/metrics.py): every process of the deployment on
# this machine writes its samples here, and GET /metrics adds them up. The variable is set here,
# in every process before anything imports prometheus_client (it decides the mode on import), and
# inherited by the processes `serve` and `qcluster` start.
METRICS_DIR = Path(env("PROMETHEUS_MULTIPROC_DIR", default=str(DATA_DIR / "metrics"))).resolve()
METRICS_DIR.mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(METRICS_DIR)
# GET /metrics answers loopback clients, and others with "Authorization: Bearer <METRICS_TOKEN>".
METRICS_TOKEN = env("METRICS_TOKEN", default="")
# A machine that runs only workers serves their metrics itself (`qcluster --metrics-port`): on
# METRICS_PORT (0: not at all) of METRICS_HOST, to the same clients as GET /metrics.
METRICS_PORT = env.int("METRICS_PORT", default=0)
METRICS_HOST = env("METRICS_HOST", default="0.0.0.0")
# OpenTelemetry traces (agentproj/tracing.py), exported over OTLP/HTTP only where the standard
# OTEL_EXPORTER_OTLP_ENDPOINT (or its traces-only twin) names a collector: without one no process
# records a span. The exporter reads the other OTEL_EXPORTER_OTLP_* variables itself.
TRACES_ENABLED = bool(
    env("OTEL_EXPORTER_OTLP_ENDPOINT", default="")
    or env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", default="")
) and not env.bool("OTEL_SDK_DISABLED", default=False)
OTEL_SERVICE_NAME = env("OTEL_SERVICE_NAME", default="agentproj")
# Off unless asked for: Django's debug pages show stack traces, and clients never see those.
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Under /api/ a CSRF failure answers the API's JSON (`csrf_failed`), elsewhere Django's page.
CSRF_FAILURE_VIEW = "agentproj.api_errors.csrf_failure"

# HTTPS deployments turn these on; plain-HTTP loopback (the embedded default) needs them off.
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# Behind a TLS-terminating proxy: "HTTP_X_FORWARDED_PROTO,https" (the header, as Django's META
# names it, and the value that means HTTPS). Only set it when the proxy always sets the header.
SECURE_PROXY_SSL_HEADER = tuple(env.list("SECURE_PROXY_SSL_HEADER", default=[])) or None

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    # Before django_q: its `qcluster` command replaces django-q2's (worker drain on shutdown).
    "sessions_app",
    "approvals_app",
    "django_q",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "agentproj.no_store.NoStoreMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_permissions_policy.PermissionsPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "agentproj.urls"
ASGI_APPLICATION = "agentproj.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "agentproj.context_processors.vocabulary",
                "approvals_app.inbox.context.approvals_waiting",
            ],
        },
    },
]

# SQLite ignores SELECT ... FOR UPDATE. IMMEDIATE transactions take the write lock at BEGIN, so
# concurrent writers queue on the busy timeout instead of failing when a read upgrades to a write.
SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 30,
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(SQLITE_OPTIONS)
    # Each thread keeps its connection: opening one (the file, the pragmas) for every request
    # and every database call of a socket cost the web process a tenth of its time under load.
    DATABASES["default"]["CONN_MAX_AGE"] = 600
else:
    # Django's psycopg pool: every process (web or worker) keeps a few connections open and
    # lends them to its threads, so many turns in many processes stay within max_connections.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "pool",
        {
            "min_size": 1,
            "max_size": env.int("DATABASE_POOL_SIZE", default=12),
            # How long a thread waits for a connection, e.g. while the server restarts.
            "timeout": env.float("DATABASE_POOL_TIMEOUT", default=30.0),
        },
    )
    # A restarted server leaves every idle pooled connection dead, and the pool would lend each
    # one out once more: the web's first requests after the restart failed with 500s, and a
    # worker's heartbeats, checkpoints and turn endings with them. With health checks the pool
    # tests a connection (one empty query) before lending it, and replaces a dead one.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

REDIS_URL = env("REDIS_URL", default="")

# The cross-process channel layer: Redis when configured, otherwise channels-lite on its own
# SQLite file so that its polling never contends with the application's writes.
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "agentproj.redis_channel_layer.BatchingRedisChannelLayer",
            "CONFIG": {
                # redis-py 8 times socket reads out after 5 s by default, exactly as long as the
                # layer's blocking receive waits: idle sockets would fail every 5 s.
                "hosts": [{"address": REDIS_URL, "socket_timeout": 30}],
                "prefix": env("CHANNELS_PREFIX", default="agentproj"),
                "capacity": 1000,
            },
        }
    }
else:
    DATABASES["channels"] = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": env("CHANNELS_DB_PATH", default=str(DATA_DIR / "channels.sqlite3")),
        "OPTIONS": dict(SQLITE_OPTIONS, transaction_mode="DEFERRED"),
        # The layer's polls and sends run on threads that keep their connection, as above.
        "CONN_MAX_AGE": 600,
    }
    INSTALLED_APPS.append("channels_lite")
    DATABASE_ROUTERS = ["agentproj.db_routers.ChannelLayerDatabaseRouter"]
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "agentproj.channel_layer.BatchingSQLiteChannelLayer",
            "CONFIG": {
                "database": "channels",
                "polling_interval": env.float("CHANNELS_POLL_INTERVAL", default=0.02),
                "capacity": 1000,
            },
        }
    }

# Housekeeping's time limit. Turn deliveries have none: a worker process hosts its turns in a
# background event loop and must never be killed for a long story (sessions_app.tasks).
Q_TASK_TIMEOUT = env.int("Q_TASK_TIMEOUT", default=600)
Q_WORKERS = env.int("Q_WORKERS", default=2)
# daphne processes `serve` runs on its one port (`--web-processes`).
WEB_PROCESSES = env.int("WEB_PROCESSES", default=1)
Q_CLUSTER = {
    "name": env("Q_CLUSTER_NAME", default="agentproj"),
    "workers": Q_WORKERS,
    "timeout": Q_TASK_TIMEOUT,
    "retry": Q_TASK_TIMEOUT + 60,
    # Deliveries the cluster takes ahead of its workers: a full host blocks its worker, and
    # turns waiting in this buffer cannot go to another machine, so keep it to one per worker.
    "queue_limit": Q_WORKERS,
    # Tasks after which django-q2 replaces a worker process; one that hosts turns takes no more
    # and is replaced only once its turns have ended.
    "recycle": env.int("Q_RECYCLE", default=500),
    "max_attempts": 1,
    "catch_up": False,
    "ack_failures": True,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["poll"] = env.float("Q_POLL", default=0.05)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Every page's scripts and styles are files of this site (no inline script, style or handler),
# so the policy allows nothing else. 'self' covers the same-origin websocket too.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
# Powerful browser features nothing here uses, denied to the pages and to anything they embed.
PERMISSIONS_POLICY = {
    feature: []
    for feature in (
        "accelerometer",
        "browsing-topics",
        "camera",
        "display-capture",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "payment",
        "usb",
    )
}

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/sessions/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# Brute-force protection (django-axes): after AXES_FAILURE_LIMIT wrong passwords in a row for one
# username from one address, that pair is refused for AXES_COOLOFF_SECONDS (the login page says
# so), on /accounts/login/ and /admin/login/ alike. By username and address together, so neither a
# shared address nor a guessed username locks everyone else out. Behind a proxy, run daphne with
# --proxy-headers so that the client's address is the one counted.
INSTALLED_APPS.append("axes")
MIDDLEWARE.append("axes.middleware.AxesMiddleware")
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(seconds=env.float("AXES_COOLOFF_SECONDS", default=900.0))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"

# Per-user rates (DRF throttling, agentproj/throttling.py), counted in the default cache: per
# process unless CACHE_URL names a shared one (e.g. redis://...). ``sessions``: creating, renaming
# and deleting sessions (API and pages); ``events``: reading a timeline (the events API and the
# chat page); ``resume``: a socket's replays. The variable names the rates it changes; the others
# keep their defaults.
API_THROTTLE_RATES = {
    "send": "60/min",
    "cancel": "120/min",
    "decide": "120/min",
    "sessions": "30/min",
    "events": "240/min",
    "resume": "30/min",
    **env.dict("API_THROTTLE_RATES", default={}),
}
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}
# Per-user caps. Sockets open at once (session pages, session lists, approval queues), counted in
# the database across every web process (sessions_app/socket_registry.py); turns active at once
# over all of a user's sessions (queued, running, waiting for approval or stopping).
# A chat tab holds two sockets (its session, and the sessions its sidebar lists): twenty tabs.
MAX_SOCKETS_PER_USER = env.int("MAX_SOCKETS_PER_USER", default=40)
MAX_ACTIVE_TURNS_PER_USER = env.int("MAX_ACTIVE_TURNS_PER_USER", default=10)

# An open websocket re-checks its login and permission before forwarding, at most this often
# (sessions_app/web/consumers.py); logging out closes it at once in any case.
WEBSOCKET_LOGIN_RECHECK_INTERVAL = env.float("WEBSOCKET_LOGIN_RECHECK_INTERVAL", default=2.0)

EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="agent@agentproj.local")
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=30.0)
# For the SMTP backend; the file backend writes each message into EMAIL_FILE_PATH.
EMAIL_HOST = env("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_FILE_PATH = env("EMAIL_FILE_PATH", default=str(DATA_DIR / "mail"))

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "agentproj.api_auth.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    # JSON only: the browsable API's templates carry inline styles that the CSP refuses.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON in as well: a form body cannot say "not an object", so an empty or malformed form
    # passed for a valid request (schemathesis found `POST /api/sessions/` with a body of None).
    # Read with bounded nesting and finite numbers: 400 invalid_json, never a RecursionError.
    "DEFAULT_PARSER_CLASSES": ["agentproj.parsers.BoundedJSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "agentproj.api_errors.exception_handler",
    "DEFAULT_PAGINATION_CLASS": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "agentproj API",
    "DESCRIPTION": "Sessions, turns, cancellation, timeline events and approvals.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # PATCH /api/sessions/<id>/ takes exactly the fields it names (a title, required), not a
    # "patched" copy of them with every field optional.
    "COMPONENT_SPLIT_PATCH": False,
    # Swagger UI from this site's static files (drf-spectacular-sidecar), never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # Swagger UI would otherwise send the schema to an online validator for its badge.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
}

# The built-in demo model is mounted in the web process only while it is the model in use: by
# default when LLM_BASE_URL is unset (`serve` says so explicitly to the processes it starts).
DEMO_LLM_ENABLED = env.bool("DEMO_LLM_ENABLED", default="LLM_BASE_URL" not in os.environ)
# It answers only this deployment's workers, which derive the same key from SECRET_KEY.
DEMO_LLM_API_KEY = hmac.new(SECRET_KEY.encode(), b"agentproj demo model", "sha256").hexdigest()

LLM_BASE_URL = env("LLM_BASE_URL", default="http://127.0.0.1:8000/demo-llm/v1")
LLM_API_KEY = env("LLM_API_KEY", default=DEMO_LLM_API_KEY if DEMO_LLM_ENABLED else "")
LLM_MODEL = env("LLM_MODEL", default="agentproj-demo")
LLM_CONNECT_TIMEOUT = env.float("LLM_CONNECT_TIMEOUT", default=10.0)
# No byte from the model for this long: the attempt fails (and may be retried).
LLM_STREAM_IDLE_TIMEOUT = env.float("LLM_STREAM_IDLE_TIMEOUT", default=60.0)
LLM_MAX_RETRIES = env.int("LLM_MAX_RETRIES", default=3)
LLM_RETRY_BASE_DELAY = env.float("LLM_RETRY_BASE_DELAY", default=0.5)
LLM_RETRY_MAX_DELAY = env.float("LLM_RETRY_MAX_DELAY", default=20.0)

AGENT_MAX_MODEL_CALLS = env.int("AGENT_MAX_MODEL_CALLS", default=20)
# The model's context window in tokens, and the part of it kept free for the answer: a turn's
# model input leaves out the session's oldest exchanges beyond the rest. A model server that
# refuses a request as too long states its real window, which the session then keeps to.
AGENT_CONTEXT_TOKENS = env.int("AGENT_CONTEXT_TOKENS", default=128_000)
AGENT_ANSWER_RESERVE_TOKENS = env.int("AGENT_ANSWER_RESERVE_TOKENS", default=4_096)
# Characters the model may write in one turn (text and tool calls, over all its model calls).
# A model stuck in a loop, or a server streaming without end, would otherwise grow the answer
# in the worker's memory and in the database without bound. 200,000 characters is about 50,000
# tokens, more than a model's longest single answer (most cap one reply at 16-32k tokens). A
# sub-agent is a turn of its own with its own limit.
AGENT_MAX_OUTPUT_CHARS = env.int("AGENT_MAX_OUTPUT_CHARS", default=200_000)
AGENT_LEASE_TIMEOUT = env.float("AGENT_LEASE_TIMEOUT", default=30.0)
AGENT_HEARTBEAT_INTERVAL = env.float("AGENT_HEARTBEAT_INTERVAL", default=5.0)
AGENT_CANCEL_POLL_INTERVAL = env.float("AGENT_CANCEL_POLL_INTERVAL", default=1.0)
AGENT_CHECKPOINT_INTERVAL = env.float("AGENT_CHECKPOINT_INTERVAL", default=0.3)
AGENT_MAX_ATTEMPTS = env.int("AGENT_MAX_ATTEMPTS", default=3)
AGENT_REDELIVER_AFTER = env.float("AGENT_REDELIVER_AFTER", default=120.0)
AGENT_DRAIN_TIMEOUT = env.float("AGENT_DRAIN_TIMEOUT", default=20.0)
AGENT_DRAIN_MODE = env("AGENT_DRAIN_MODE", default="requeue")
# Turns one worker process hosts at once in its event loop. A streaming turn is mostly waiting
# on the network: 50 per process lets the default two workers serve 100 conversations at once
# within the machine's memory and the model server's connection limits.
AGENT_TURNS_PER_WORKER = env.int("AGENT_TURNS_PER_WORKER", default=50)
# Threads of a worker process for the ORM work of all its turns (and its pool's connections).
AGENT_DB_THREADS = env.int("AGENT_DB_THREADS", default=8)
AGENT_MAX_MESSAGE_CHARS = env.int("AGENT_MAX_MESSAGE_CHARS", default=8000)
AGENT_TOOLS = env.list(
    "AGENT_TOOLS",
    default=[
        "sessions_app.runtime.tools.GetTime",
        "sessions_app.runtime.tools.SendEmail",
        "sessions_app.runtime.tools.Delegate",
    ],
)
# MCP servers declared for the deployment, in addition to those registered in the admin: a JSON
# list of {"name", "command", "args"?, "env"?} (stdio) or {"name", "url", "headers"?} (streamable
# HTTP). Checked when the app loads (sessions_app.mcp.checks).
AGENT_MCP_SERVERS = env.json("AGENT_MCP_SERVERS", default=[])
# Starting a server (its process or first request), the handshake and tools/list, together.
AGENT_MCP_CONNECT_TIMEOUT = env.float("AGENT_MCP_CONNECT_TIMEOUT", default=30.0)
# One tool call; past it the server is told to cancel and the model gets a tool error.
AGENT_MCP_CALL_TIMEOUT = env.float("AGENT_MCP_CALL_TIMEOUT", default=120.0)
# Characters of a tool's result the model gets (text and structured content together).
AGENT_MCP_MAX_RESULT_CHARS = env.int("AGENT_MCP_MAX_RESULT_CHARS", default=20_000)
APPROVAL_TIMEOUT = env.float("APPROVAL_TIMEOUT", default=24 * 3600.0)
# How long a policy rule's regular expression may run on one value; past it the rule fails
# closed (approvals_app/conditions.py).
POLICY_REGEX_TIMEOUT = env.float("POLICY_REGEX_TIMEOUT", default=0.05)
# Notifications of approval requests (approvals_app/notifications.py). A worker process knows no
# request's host, so links in e-mails and webhooks start with the address people reach the site at.
SITE_URL = env("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
APPROVAL_WEBHOOK_URL = env("APPROVAL_WEBHOOK_URL", default="")
APPROVAL_WEBHOOK_SECRET = env("APPROVAL_WEBHOOK_SECRET", default="")
APPROVAL_WEBHOOK_TIMEOUT = env.float("APPROVAL_WEBHOOK_TIMEOUT", default=10.0)
# The task sleeps between attempts in a worker process that also takes turn deliveries: with
# these defaults a receiver that is down holds it for about 7 s plus the attempts' timeouts.
APPROVAL_WEBHOOK_ATTEMPTS = env.int("APPROVAL_WEBHOOK_ATTEMPTS", default=4)
APPROVAL_WEBHOOK_RETRY_DELAY = env.float("APPROVAL_WEBHOOK_RETRY_DELAY", default=1.0)
# Approvals in Slack (approvals_app/integrations/slack.py), on when the bot token and the signing
# secret are both set. SLACK_API_URL points the Web API client elsewhere (scripts/slack_fake.py).
# Posting and updating messages use the webhook's attempts and back-off above.
SLACK_BOT_TOKEN = env("SLACK_BOT_TOKEN", default="")
SLACK_SIGNING_SECRET = env("SLACK_SIGNING_SECRET", default="")
SLACK_APPROVAL_CHANNEL = env("SLACK_APPROVAL_CHANNEL", default="")
SLACK_API_URL = env("SLACK_API_URL", default="https://slack.com/api/")
SLACK_TIMEOUT = env.float("SLACK_TIMEOUT", default=10.0)
# How long a Slack user's e-mail address (users.info) is trusted before it is asked again.
SLACK_USER_CACHE_SECONDS = env.int("SLACK_USER_CACHE_SECONDS", default=300)
# The Ed25519 private key that signs approval receipts (approvals_app/receipts.py): PEM (PKCS#8,
# "\n" may stand for line breaks) or the 32-byte raw key in base64. Unset, one is generated into
# DATA_DIR once and every process of the deployment reads it from there.
APPROVAL_RECEIPT_KEY = env.str("APPROVAL_RECEIPT_KEY", default="", multiline=True)
DEMO_LLM_TOKEN_DELAY = env.float("DEMO_LLM_TOKEN_DELAY", default=0.05)
# The usage budget of every user without one in the admin (their own or a group's), e.g.
# "tokens=200000/day" or "usd=20/month"; unset, no limit. Checked here so that a wrong value stops
# the deployment from starting rather than letting everyone spend without a limit.
BUDGET_DEFAULT = env("BUDGET_DEFAULT", default="")
budget_default.parse(BUDGET_DEFAULT)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        # Their DEBUG traces quote exceptions, and h11's quotes the header it refused ("Illegal
        # header value b'…'"), which may be an MCP server's secret: not even at LOG_LEVEL=DEBUG.
        "httpcore": {"level": "INFO"},
        "httpcore2": {"level": "INFO"},
    },
}
