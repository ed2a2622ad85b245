"""Settings for the web server bench/bench_claim.py starts: local settings on PostgreSQL and Redis,
DEBUG off, plus a middleware that reports each request's SQL query count in a response header."""

from config.settings.local import *  # noqa: F403
from config.settings.local import MIDDLEWARE

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
MIDDLEWARE = ["claim_bench_query_count.QueryCountMiddleware", *MIDDLEWARE]
