"""Test settings: real PostgreSQL and real Redis, never SQLite (see bin/test)."""

from .base import *  # noqa: F403
from .base import database_settings, env, redis_cache, with_replica

SECRET_KEY = env("DJANGO_SECRET_KEY", default="test-only-not-secret-7d1f2c3b4a5e6f708192")
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
DEBUG = False

DATABASES = with_replica(
    {"default": database_settings(env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/portal"))}
)
DATABASES["default"]["TEST"] = {"NAME": env("TEST_DATABASE_NAME", default="test_portal")}
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/15")
CACHES = {"default": redis_cache(REDIS_URL, KEY_PREFIX=env("TEST_CACHE_PREFIX", default="test"))}
CELERY_BROKER_URL = REDIS_URL
# Heartbeats go through the intake stream, as in production: a test that reads what a heartbeat
# wrote runs the writer first (devices.heartbeat_intake.write_buffered_heartbeats).
HEARTBEAT_BATCHING = env.bool("HEARTBEAT_BATCHING", default=True)
# Tests run tasks in-process unless they start a real worker (tests/conftest.py: celery_worker_process).
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
WEBHOOK_ALLOW_HTTP = True
# Staff reach the admin with a password alone here; production requires a second factor.
ADMIN_TWO_FACTOR_REQUIRED = env.bool("DJANGO_ADMIN_TWO_FACTOR_REQUIRED", default=False)
