"""Settings, all from the environment, with embedded defaults that need no service at all.

Embedded default: SQLite (WAL) for the data, a second SQLite file for the cross-process channel
layer (channels-lite), and django-q2's ORM broker. ``DATABASE_URL`` switches the database,
``REDIS_URL`` switches both the channel layer and the task broker to Redis.
"""

from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

SECRET_KEY = env("SECRET_KEY", default="agentproj-development-only-secret-key-change-me")
# Off unless asked for: Django's debug pages show stack traces, and clients never see those.
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

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
    "channels",
    "django_q",
    "sessions_app",
    "approvals_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
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

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(SQLITE_OPTIONS)
else:
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)

REDIS_URL = env("REDIS_URL", default="")

# The cross-process channel layer: Redis when configured, otherwise channels-lite on its own
# SQLite file so that its polling never contends with the application's writes.
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
                "prefix": env("CHANNELS_PREFIX", default="agentproj"),
                "capacity": 1000,
            },
        }
    }
else:
    DATABASES["channels"] = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": env("CHANNELS_DB_PATH", default=str(BASE_DIR / "channels.sqlite3")),
        "OPTIONS": dict(SQLITE_OPTIONS, transaction_mode="DEFERRED"),
    }
    INSTALLED_APPS.append("channels_lite")
    DATABASE_ROUTERS = ["agentproj.db_routers.ChannelLayerDatabaseRouter"]
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_lite.layers.core.SQLiteChannelLayer",
            "CONFIG": {
                "database": "channels",
                "polling_interval": env.float("CHANNELS_POLL_INTERVAL", default=0.02),
                "capacity": 1000,
            },
        }
    }

Q_TASK_TIMEOUT = env.int("Q_TASK_TIMEOUT", default=600)
Q_CLUSTER = {
    "name": env("Q_CLUSTER_NAME", default="agentproj"),
    "workers": env.int("Q_WORKERS", default=2),
    # A turn parks instead of holding a worker, but a long story can stream for minutes.
    "timeout": Q_TASK_TIMEOUT,
    "retry": Q_TASK_TIMEOUT + 60,
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

# Per-user API rates (DRF throttling, agentproj/throttling.py), counted in the default cache:
# per process unless CACHE_URL names a shared one (e.g. redis://...).
API_THROTTLE_RATES = env.dict(
    "API_THROTTLE_RATES", default={"send": "60/min", "cancel": "120/min", "decide": "120/min"}
)
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

# An open websocket re-checks its login and permission before forwarding, at most this often
# (sessions_app/consumers.py); logging out closes it at once in any case.
WEBSOCKET_LOGIN_RECHECK_INTERVAL = env.float("WEBSOCKET_LOGIN_RECHECK_INTERVAL", default=2.0)

EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="agent@agentproj.local")
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=30.0)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
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
}

LLM_BASE_URL = env("LLM_BASE_URL", default="http://127.0.0.1:8000/demo-llm/v1")
LLM_API_KEY = env("LLM_API_KEY", default="demo")
LLM_MODEL = env("LLM_MODEL", default="agentproj-demo")
LLM_CONNECT_TIMEOUT = env.float("LLM_CONNECT_TIMEOUT", default=10.0)
LLM_READ_TIMEOUT = env.float("LLM_READ_TIMEOUT", default=120.0)
LLM_MAX_RETRIES = env.int("LLM_MAX_RETRIES", default=3)
LLM_RETRY_BASE_DELAY = env.float("LLM_RETRY_BASE_DELAY", default=0.5)
LLM_RETRY_MAX_DELAY = env.float("LLM_RETRY_MAX_DELAY", default=20.0)

AGENT_MAX_MODEL_CALLS = env.int("AGENT_MAX_MODEL_CALLS", default=20)
AGENT_LEASE_TIMEOUT = env.float("AGENT_LEASE_TIMEOUT", default=30.0)
AGENT_HEARTBEAT_INTERVAL = env.float("AGENT_HEARTBEAT_INTERVAL", default=5.0)
AGENT_CANCEL_POLL_INTERVAL = env.float("AGENT_CANCEL_POLL_INTERVAL", default=1.0)
AGENT_CHECKPOINT_INTERVAL = env.float("AGENT_CHECKPOINT_INTERVAL", default=0.3)
AGENT_MAX_ATTEMPTS = env.int("AGENT_MAX_ATTEMPTS", default=3)
AGENT_REDELIVER_AFTER = env.float("AGENT_REDELIVER_AFTER", default=120.0)
AGENT_DRAIN_TIMEOUT = env.float("AGENT_DRAIN_TIMEOUT", default=20.0)
AGENT_DRAIN_MODE = env("AGENT_DRAIN_MODE", default="requeue")
AGENT_MAX_MESSAGE_CHARS = env.int("AGENT_MAX_MESSAGE_CHARS", default=8000)
AGENT_TOOLS = env.list(
    "AGENT_TOOLS",
    default=[
        "sessions_app.runtime.tools.GetTime",
        "sessions_app.runtime.tools.SendEmail",
        "sessions_app.runtime.tools.Delegate",
    ],
)
APPROVAL_TIMEOUT = env.float("APPROVAL_TIMEOUT", default=24 * 3600.0)
DEMO_LLM_TOKEN_DELAY = env.float("DEMO_LLM_TOKEN_DELAY", default=0.05)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}
