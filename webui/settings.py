"""Settings for the web UI, read from the environment with safe defaults.

Every setting a deployer may change is listed in README.md with an example.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import dj_database_url
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    return float(value) if value else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def env_headers(name: str) -> dict[str, str]:
    """Parse extra HTTP headers: a JSON object or `Name: value` pairs separated by `;`."""
    raw = env_str(name)
    if not raw:
        return {}
    if raw.startswith("{"):
        parsed = json.loads(raw)
        return {str(key): str(value) for key, value in parsed.items()}
    headers = {}
    for pair in raw.split(";"):
        if ":" in pair:
            key, value = pair.split(":", 1)
            headers[key.strip()] = value.strip()
    return headers


DATA_DIR = Path(env_str("DATA_DIR") or BASE_DIR / "data")
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """Return SECRET_KEY from the environment, else one generated once and kept in DATA_DIR."""
    from_env = env_str("SECRET_KEY")
    if from_env:
        return from_env
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        key_file.touch(mode=0o600)
        key_file.write_text(secrets.token_urlsafe(50))
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "django_htmx",
    "template_partials",
    "webui",
    "chat",
    "models_admin",
]

REMOTE_USER_HEADER = env_str("REMOTE_USER_HEADER")  # e.g. HTTP_X_REMOTE_USER; empty = off

MIDDLEWARE = [
    "webui.logs.request_id_middleware",  # first: every log line of a request carries its id
    "django.middleware.security.SecurityMiddleware",
    "webui.security.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "webui.security.NullCharacterMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    *(["webui.middleware.TrustedHeaderMiddleware"] if REMOTE_USER_HEADER else []),
    "webui.middleware.ApprovalRequiredMiddleware",
    "webui.middleware.UserLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

AUTHENTICATION_BACKENDS = [
    *(["webui.middleware.TrustedHeaderBackend"] if REMOTE_USER_HEADER else []),
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "webui.urls"
ASGI_APPLICATION = "webui.asgi.application"

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
                "django.template.context_processors.i18n",
                "webui.context_processors.webui",
            ],
        },
    },
]

# Database: DATABASE_URL, else a SQLite file in DATA_DIR tuned for concurrent async use.
DATABASE_URL = env_str("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'db.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Keep SQLite connections open: opening one (file, PRAGMAs, SQL functions) costs more than
    # the queries of a whole chat turn, and consumers and the generation task would open one per
    # database call (database_sync_to_async closes connections older than CONN_MAX_AGE). A
    # SQLite connection is a file handle, not a server process, so there is nothing to pool.
    DATABASES["default"]["CONN_MAX_AGE"] = None
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets readers run beside the writer; IMMEDIATE takes the write lock at BEGIN,
        # so two writers queue on the busy timeout instead of failing with "database is locked".
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # A file, not memory, so the daphne processes of end-to-end tests share the test database.
    # Per process, so parallel runs (xdist workers, two terminals) never share one.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test-db-{os.getpid()}.sqlite3")}
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
CHANNELS_PREFIX = env_str("CHANNELS_PREFIX", "webui")  # keeps apps sharing one Redis apart
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "webui.redis_layer.RedisChannelLayer",  # cancellable receives
            "CONFIG": {
                # redis-py 8 caps a pool at 100 connections and then raises: 200 sockets
                # connecting at once crashed their consumers with "Too many connections".
                # It also times reads out after 5 s, as long as channels-redis blocks in
                # BZPOPMIN: idle consumers crashed with "Timeout reading" (channels_redis#422).
                "hosts": [{"address": REDIS_URL, "max_connections": 2000, "socket_timeout": 15}],
                "capacity": 1500,
                # channels-redis keeps every socket of a process in ONE Redis key, and drops
                # frames past its capacity: 100 streaming users overflowed 1500 and lost tokens.
                "channel_capacity": {"specific.*": 100_000},
                "expiry": 30,
                "prefix": CHANNELS_PREFIX,
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 1500}}
    }

# Ollama
OLLAMA_HOST = env_str("OLLAMA_HOST")  # parsed like the official client; empty = 127.0.0.1:11434
OLLAMA_HEADERS = env_headers("OLLAMA_HEADERS")
OLLAMA_TIMEOUT = env_float("OLLAMA_TIMEOUT", 120.0)  # seconds without a byte before giving up
OLLAMA_CONNECT_TIMEOUT = env_float("OLLAMA_CONNECT_TIMEOUT", 5.0)
OLLAMA_MAX_CONNECTIONS = env_int("OLLAMA_MAX_CONNECTIONS", 1000)
OLLAMA_SIMULATED = env_bool("OLLAMA_SIMULATED", False)  # set by `make demo`
# Several servers: "[name=]host, ..." each parsed like OLLAMA_HOST; empty = OLLAMA_HOST alone.
# Admins add more in the app (/models/servers/); webui/fleet.py picks one per request.
OLLAMA_HOSTS = env_list("OLLAMA_HOSTS")
OLLAMA_HEALTH_TIMEOUT = env_float("OLLAMA_HEALTH_TIMEOUT", 1.5)  # seconds before a server counts as down
OLLAMA_HEALTH_INTERVAL = env_float("OLLAMA_HEALTH_INTERVAL", 5.0)  # seconds a health answer is reused
OLLAMA_MODELS_TTL = env_float("OLLAMA_MODELS_TTL", 10.0)  # seconds model lists are reused (pickers, routing)

# Accounts
SIGNUP_MODE = env_str("SIGNUP_MODE", "approval")  # approval | open | closed
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
LOGIN_FAILURE_WINDOW = env_int("LOGIN_FAILURE_WINDOW", 300)  # seconds
SIGNUP_LIMIT = env_int("SIGNUP_LIMIT", 5)  # sign-ups per address per window
SIGNUP_WINDOW = env_int("SIGNUP_WINDOW", 3600)  # seconds
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat:index"
LOGOUT_REDIRECT_URL = "login"

# Chat
MAX_GENERATIONS_PER_USER = env_int("MAX_GENERATIONS_PER_USER", 2)
MAX_MESSAGES_PER_MINUTE = env_int("MAX_MESSAGES_PER_MINUTE", 20)  # sends, edits, regenerations; 0 = off
MAX_MESSAGE_CHARS = env_int("MAX_MESSAGE_CHARS", 100_000)
WS_MAX_FRAME_BYTES = env_int("WS_MAX_FRAME_BYTES", 512 * 1024)
STREAM_FRAME_INTERVAL = env_float("STREAM_FRAME_INTERVAL", 0.03)  # seconds between frames
STREAM_CHECKPOINT_INTERVAL = env_float("STREAM_CHECKPOINT_INTERVAL", 3.0)
STREAM_STALE_AFTER = env_float("STREAM_STALE_AFTER", 20.0)  # no checkpoint for this long = dead

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CHANNELS_PREFIX,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Internationalization
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# Static files: whitenoise serves them with DEBUG off, so `make run` is a real deployment.
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "webui.storage.StaticStorage"},
}
WHITENOISE_USE_FINDERS = True  # serves files added since the last collectstatic, too

# Security
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
HTTPS = env_bool("HTTPS", False)  # set when served behind a TLS-terminating proxy
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
    LANGUAGE_COOKIE_SECURE = True
# Preloading HSTS is a promise about every subdomain that is hard to take back: opt-in only.
SILENCED_SYSTEM_CHECKS = [] if env_bool("SECURE_HSTS_PRELOAD", False) else ["security.W021"]
LANGUAGE_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True  # pages read the token from <meta name="csrf-token">, never the cookie

LOG_FORMAT = env_str("LOG_FORMAT", "plain")  # plain | json (one JSON object per line)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Every line carries the HTTP request's id (request=…) or the generated reply's (reply=…).
    "filters": {"context": {"()": "webui.logs.ContextFilter"}},
    "formatters": {
        "plain": {"()": "webui.logs.PlainFormatter"},
        "json": {"()": "webui.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}
