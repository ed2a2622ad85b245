"""Webhooks through real Celery workers started as production starts them (`celery -A config worker`,
no -Q): the webhooks queue is consumed, a killed worker loses no delivery, and a slow endpoint of
one organization does not hold up another's."""

import pytest
from django.utils import timezone

from accounts.models import Role
from devices.actions import move_device
from webhooks.delivery import wake_due_endpoints
from webhooks.models import Delivery, Endpoint

from .celery_workers import celery_workers
from .conftest import wait_for
from .factories import ClaimedDeviceFactory, MembershipFactory, SpaceFactory, webhook_endpoint
from .webhook_receiver import Receiver

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def workers(settings, tmp_path):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    with celery_workers(tmp_path, WEBHOOK_ALLOW_PRIVATE_TARGETS="true") as running:
        yield running


def _move(organization):
    device = ClaimedDeviceFactory(space=SpaceFactory(organization=organization))
    move_device(device, space=SpaceFactory(organization=organization), actor=None)


def test_a_worker_started_without_a_queue_delivers_after_the_commit(workers, organization, space):
    workers.start()
    with Receiver() as receiver:
        webhook_endpoint(organization, receiver.url())
        _move(organization)
        wait_for(lambda: Delivery.objects.filter(status=Delivery.Status.SUCCEEDED).exists())
        assert len(receiver.requests) == 1


def test_a_killed_worker_loses_no_delivery(workers, organization, space):
    answers = iter([(200, {}, 30.0)])
    with Receiver(lambda path: next(answers, (200, {}, 0))) as receiver:
        webhook_endpoint(organization, receiver.url())
        first = workers.start()
        _move(organization)
        wait_for(lambda: len(receiver.requests) == 1)

        first.kill()  # in the middle of the POST: only the attempt itself was recorded
        first.wait()
        pending = Delivery.objects.get()
        assert (pending.status, pending.attempts) == (Delivery.Status.PENDING, 1)
        assert pending.next_attempt_at > timezone.now()

        workers.start()
        # The lease of the dead worker runs out and the retry falls due (here at once, rather than
        # after a minute and its backoff), and the beat finds the delivery.
        Endpoint.objects.update(sending_until=timezone.now())
        Delivery.objects.update(next_attempt_at=timezone.now())
        assert wake_due_endpoints() == 1
        wait_for(lambda: Delivery.objects.filter(status=Delivery.Status.SUCCEEDED).exists())

    assert len(receiver.requests) == 2
    assert receiver.requests[0].body == receiver.requests[1].body


def test_a_slow_endpoints_backlog_does_not_hold_up_another_organizations_event(workers, organization, space):
    other = MembershipFactory(role=Role.OWNER).organization
    with Receiver(lambda path: (200, {}, 0.5 if path == "/slow" else 0)) as receiver:
        slow, _ = webhook_endpoint(organization, receiver.url("/slow"))
        for _ in range(30):
            _move(organization)
        workers.start(concurrency=2)
        wait_for(lambda: any(request.path == "/slow" for request in receiver.requests))

        webhook_endpoint(other, receiver.url("/quick"))
        _move(other)
        wait_for(lambda: any(request.path == "/quick" for request in receiver.requests), timeout=5)

        slow_sent = sum(request.path == "/slow" for request in receiver.requests)
    # The quick one went through while the slow one still had most of its backlog.
    assert slow_sent < 30
