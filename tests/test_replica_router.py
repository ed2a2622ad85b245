"""The replica router's rules within one request (portal/replica.py); tests/test_read_replica.py
shows them on a real streaming replica."""

import pytest
from django.contrib.sessions.models import Session
from django.db import transaction

from accounts.models import Membership, Organization, User, UserSession
from portal import replica
from spaces.models import Space
from vendors.models import VendorStaff


@pytest.fixture
def opted_in_request(monkeypatch):
    """A GET of a page listed in DATABASE_REPLICA_PAGES, with a replica that answers in time."""
    monkeypatch.setattr(replica, "replica_usable", lambda: True)
    state = replica._RequestReads(opted_in=True)
    token = replica._request.set(state)
    yield state
    replica._request.reset(token)


def test_reads_of_a_listed_page_go_to_the_replica(opted_in_request):
    assert replica.ReplicaRouter().db_for_read(Space) == "replica"


def test_a_read_after_a_write_in_the_same_request_goes_to_the_primary(opted_in_request):
    router = replica.ReplicaRouter()

    assert router.db_for_write(Space) == "default"

    assert router.db_for_read(Space) == "default"
    assert opted_in_request.wrote


@pytest.mark.django_db
def test_a_read_inside_a_transaction_on_the_primary_stays_on_the_primary(opted_in_request):
    with transaction.atomic():
        assert replica.ReplicaRouter().db_for_read(Space) == "default"


@pytest.mark.parametrize("model", [Session, UserSession, User])
def test_sessions_and_users_are_always_read_on_the_primary(opted_in_request, model):
    assert replica.ReplicaRouter().db_for_read(model) == "default"


@pytest.mark.parametrize("model", [Membership, Organization, VendorStaff])
def test_who_may_see_a_page_is_read_on_the_primary(opted_in_request, model):
    # A member removed, or an organization's two-factor requirement turned on, a moment ago must
    # take effect on the next page, not once the replica has caught up.
    assert replica.ReplicaRouter().db_for_read(model) == "default"


def test_pages_not_listed_and_requests_after_a_write_read_the_primary(opted_in_request):
    opted_in_request.opted_in = False
    assert replica.ReplicaRouter().db_for_read(Space) == "default"
    opted_in_request.opted_in, opted_in_request.pinned = True, True
    assert replica.ReplicaRouter().db_for_read(Space) == "default"


def test_migrations_run_on_the_primary_alone():
    router = replica.ReplicaRouter()
    assert router.allow_migrate("default", "spaces")
    assert not router.allow_migrate("replica", "spaces")
