"""Sessions live in PostgreSQL: the daily task deletes the expired ones."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import UserSession as Session
from accounts.tasks import clear_expired_sessions


@pytest.mark.django_db
def test_the_daily_task_deletes_expired_sessions_and_keeps_live_ones(client, owner):
    client.force_login(owner)
    live = client.session.session_key
    Session.objects.create(session_key="expired-one", session_data="x", expire_date=timezone.now() - timedelta(days=1))

    clear_expired_sessions()

    assert list(Session.objects.values_list("session_key", flat=True)) == [live]
