"""Production settings pass Django's deployment checks with the documented environment."""

import os
import subprocess
import sys

POOLING_VARIABLES = {"DATABASE_POOLER", "DATABASE_SERVER_SIDE_BINDING", "DATABASE_REPLICA_URL"}


def production_environment(**extra):
    unset = {"DJANGO_ALLOW_ASYNC_UNSAFE", "DJANGO_PORTAL_ORIGIN", *POOLING_VARIABLES - extra.keys()}
    return (
        {k: v for k, v in os.environ.items() if k not in unset}
        | extra
        | {
            "DJANGO_SETTINGS_MODULE": "config.settings.production",
            "DJANGO_SECRET_KEY": "x" * 20 + "a-long-random-production-secret-key-for-the-check",
            "DJANGO_ALLOWED_HOSTS": "portal.example.com",
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/portal",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
        }
    )


def manage(*args, **extra):
    return subprocess.run(
        [sys.executable, "manage.py", *args], env=production_environment(**extra), capture_output=True, text=True
    )


DATABASE_CHOICES = (
    "from django.conf import settings; d = settings.DATABASES;"
    " options = d['default']['OPTIONS'];"
    " print(options['server_side_binding'], options['prepare_threshold'], d['default']['DISABLE_SERVER_SIDE_CURSORS'],"
    " d.get('replica', {}).get('TEST', {}).get('MIRROR'))"
)


def test_behind_a_transaction_pooler_nothing_relies_on_a_server_session():
    result = manage("shell", "--no-imports", "-c", DATABASE_CHOICES, DATABASE_POOLER="transaction")
    assert result.stdout.split() == ["False", "None", "True", "None"], result.stdout + result.stderr


def test_straight_to_postgresql_statements_are_prepared_and_cursors_kept_on_the_server():
    result = manage("shell", "--no-imports", "-c", DATABASE_CHOICES)
    assert result.stdout.split() == ["True", "5", "False", "None"], result.stdout + result.stderr


def test_a_replica_url_adds_a_replica_that_tests_mirror_from_the_primary():
    replica = "postgres://postgres@127.0.0.1:5433/portal"
    result = manage("shell", "--no-imports", "-c", DATABASE_CHOICES, DATABASE_REPLICA_URL=replica)
    assert result.stdout.split() == ["True", "5", "False", "default"], result.stdout + result.stderr


def test_production_settings_pass_check_deploy():
    result = manage("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_prints_label_links_at_the_request_address_unless_a_portal_origin_is_set():
    code = "from django.conf import settings; print(repr(settings.PORTAL_ORIGIN))"
    result = manage("shell", "--no-imports", "-c", code)
    assert result.stdout.strip() == "''", result.stdout + result.stderr


def test_links_sent_by_background_tasks_use_the_first_allowed_host_when_no_portal_origin_is_set(settings):
    from portal.links import portal_origin

    settings.PORTAL_ORIGIN = ""
    settings.SESSION_COOKIE_SECURE = True
    settings.ALLOWED_HOSTS = ["portal.example.com", "www.portal.example.com"]
    assert portal_origin() == "https://portal.example.com"
    settings.ALLOWED_HOSTS = [".example.com"]
    assert portal_origin() == ""
