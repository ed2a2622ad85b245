"""Production: PostgreSQL, Redis, gunicorn, Celery worker and beat, HTTPS. Secrets have no defaults."""

from .base import *  # noqa: F403
from .base import database_settings, env, redis_cache, with_replica

DEBUG = False
ALLOW_DEMO_DATA = False
SECRET_KEY = env("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
DATABASES = with_replica({"default": database_settings(env.db("DATABASE_URL"))})
REDIS_URL = env("REDIS_URL")
CACHES = {"default": redis_cache(REDIS_URL)}
CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_ALWAYS_EAGER = False

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
# Empty: label links use the address vendor staff reached the portal at (portal/links.py).
PORTAL_ORIGIN = env("DJANGO_PORTAL_ORIGIN", default="")
# Passkeys belong to the portal's domain: by default the first of ALLOWED_HOSTS, over HTTPS.
OTP_WEBAUTHN_RP_ID = env("DJANGO_WEBAUTHN_RP_ID", default=ALLOWED_HOSTS[0].lstrip("."))
OTP_WEBAUTHN_ALLOWED_ORIGINS = env.list("DJANGO_WEBAUTHN_ORIGINS", default=[f"https://{OTP_WEBAUTHN_RP_ID}"])

MAILERS = {
    "default": {
        "BACKEND": env("DJANGO_EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend"),
        "OPTIONS": {
            "host": env("DJANGO_EMAIL_HOST", default="localhost"),
            "port": env.int("DJANGO_EMAIL_PORT", default=587),
            "username": env("DJANGO_EMAIL_HOST_USER", default=""),
            "password": env("DJANGO_EMAIL_HOST_PASSWORD", default=""),
            "use_tls": env.bool("DJANGO_EMAIL_USE_TLS", default=True),
        },
    }
}
