"""Developer machine: the embedded default (SQLite, tasks in-process) unless DATABASE_URL / REDIS_URL are set."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env("DJANGO_SECRET_KEY", default="local-only-not-secret-0c4f7b1e9a2d4e6f8a0b")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
WEBHOOK_ALLOW_HTTP = True
# Staff reach the admin with a password alone here; production requires a second factor.
ADMIN_TWO_FACTOR_REQUIRED = env.bool("DJANGO_ADMIN_TWO_FACTOR_REQUIRED", default=False)
