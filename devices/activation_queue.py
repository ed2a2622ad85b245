"""The way activation requests reach the rule (activation.py) and their answers reach the devices.

The operation row in PostgreSQL is the state and the result; Redis only rings a doorbell (a task
should look for waiting operations) and hands finished answers to devices waiting with `?wait=N`.
Celery beat's sweeper rings again for anything a lost message or a dead worker left waiting.
"""

import contextlib
import json
import logging
import threading
import time
from datetime import timedelta

import redis
from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from portal.redis import redis_client, redis_key

from . import tasks
from .activation import ActivationRequest, process_activations
from .activation_proofs import USED_SIGNATURES_KEPT, stored_claim_code
from .activation_sql import insert_operation, lock_waiting
from .models import ActivationOperation, UsedAttestationSignature

logger = logging.getLogger(__name__)

STUCK_AFTER = timedelta(seconds=30)
KEEP_FINISHED = timedelta(days=7)
SWEEP_BATCH = 1000
# Operations processed per transaction, how long one task keeps taking batches, and how long it
# waits for more when a batch was not full.
BATCH_SIZE = 50
DRAIN_SECONDS = 10
BATCH_LINGER = 0.02
# How long the flag that a processing task is on its way can stand; if that message is lost, the
# next request after this rings again (and the sweeper regardless).
DOORBELL_SECONDS = 10
FINISHED_SECONDS = 60


def doorbell_key():
    return redis_key("activation-doorbell")


def _finished_key(operation_id):
    return redis_key(f"activation-finished:{operation_id}")


def start_activation(request: ActivationRequest, *, client_address: str | None = None) -> ActivationOperation:
    """Record the activation request (status assigning) and ring the doorbell once the row is committed.

    Keeps only the keyed hash of its claim code, and the address it came from (`client_address`,
    an IP address or None). If the broker is down the request is still accepted: the sweeper rings
    again later.
    """
    operation = ActivationOperation(
        vendor_slug=request.vendor,
        model_slug=request.model,
        identifiers=request.identifiers,
        device_public_key=request.public_key,
        attestation=request.attestation,
        claim_code_hash=stored_claim_code(request.claim_code),
        client_address=client_address,
    )
    insert_operation(operation)
    transaction.on_commit(ring_doorbell)
    return operation


def ring_doorbell():
    """Make sure a worker will look for waiting operations soon: send the processing task, unless
    one is already due. A broker failure is logged, not raised (the sweeper rings again).

    A burst of activations would otherwise send one message per request, and the worker's work per
    message outweighed the activation itself. The Redis flag says "a task is on its way or at work";
    the task clears it once it finds nothing waiting and then looks once more
    (process_waiting_activations), so an operation committed before that look is found by it, and
    one committed after rings again.
    """
    client = redis_client()
    try:
        if client is not None and not client.set(doorbell_key(), 1, nx=True, ex=DOORBELL_SECONDS):
            return
        _send_processing_task()
    except Exception:
        logger.warning("Could not ring the activation doorbell; the sweeper will ring again", exc_info=True)


def _send_processing_task():
    tasks.process_activations_task.apply_async(retry=False)


def _clear_doorbell():
    client = redis_client()
    if client is not None:
        try:
            client.delete(doorbell_key())
        except redis.RedisError:
            logger.warning("Could not clear the activation doorbell; it expires on its own", exc_info=True)


# Devices waiting for their answer (`?wait=N`).

_waiting_lock = threading.Lock()
_waiting = 0


@contextlib.contextmanager
def _waiting_seat():
    """True while this thread may wait for an answer: at most ACTIVATION_WAITERS_PER_PROCESS at once.

    A waiting device holds a web thread (and its database connection); without a cap, an
    activation storm would hold every thread and leave none for the portal's pages.
    """
    global _waiting
    with _waiting_lock:
        seated = _waiting < settings.ACTIVATION_WAITERS_PER_PROCESS
        _waiting += seated
    try:
        yield seated
    finally:
        if seated:
            with _waiting_lock:
                _waiting -= 1


def answer_when_finished(operation: ActivationOperation, seconds: float) -> dict:
    """The operation's answer (ActivationOperation.to_dict) once finished, or as it is after
    `seconds` (the `?wait=N` of the API); as it is now if too many devices wait already.

    Blocks on a Redis list to which the task pushes the answer once committed, reading the row
    at least once a second instead, so a lost announcement costs at most that second.
    """
    with _waiting_seat() as seated:
        if not seated:
            return operation.to_dict()
        deadline = time.monotonic() + seconds
        client = redis_client()
        while True:
            step = min(deadline - time.monotonic(), 1.0)
            if step > 0:
                try:
                    if client is None:
                        raise redis.RedisError("no Redis configured")
                    announced = client.blpop([_finished_key(operation.pk)], timeout=step)
                except redis.RedisError:
                    announced = None
                    time.sleep(min(step, 0.2))
                if announced is not None:
                    return json.loads(announced[1])
            try:
                result = ActivationOperation.objects.select_related("device").get(pk=operation.pk).to_dict()
            except DatabaseError:
                # The operation is committed: the device had better poll it (202 and its Location)
                # than be told to retry the request, which would start a second one.
                logger.warning("Could not read activation %s while it was awaited", operation.pk, exc_info=True)
                return operation.to_dict()
            if result["status"] != ActivationOperation.Status.ASSIGNING or deadline <= time.monotonic():
                return result


def _announce_finished(results):
    """Hand finished operations' answers to the devices waiting with `?wait=N`, if any, in one round trip."""
    client = redis_client()
    if client is None or not results:
        return
    pipe = client.pipeline(transaction=False)
    for result in results:
        key = _finished_key(result["operation_id"])
        pipe.rpush(key, json.dumps(result)).expire(key, FINISHED_SECONDS)
    try:
        pipe.execute()
    except redis.RedisError:
        logger.warning("Could not announce %d finished activations; waiters fall back to polling", len(results))


# The drain: a processing task takes batch after batch.


def process_waiting_activations(time_budget: float = DRAIN_SECONDS) -> int:
    """Process the operations waiting, batch after batch, until none is left or `time_budget`
    seconds have passed (then send a task to go on, so a long burst never hits a task time limit).
    Returns how many operations finished.

    The doorbell flag stays set while this drains, so the requests of a burst send no messages
    (see ring_doorbell); it is cleared once a look finds nothing waiting, and then this looks once
    more. An operation committed meanwhile is found by that look, or committed after the flag was
    cleared and rang again. Several of these may run at once: each takes the rows no other holds,
    and each that meets a backlog asks for one more.
    """
    stop_at = time.monotonic() + time_budget
    broken, finished, doorbell_set, helped = set(), 0, True, False
    while True:
        done, taken = _process_batch(broken)
        finished += done
        if taken < BATCH_SIZE and not doorbell_set:  # the last look found no more than a batch
            return finished
        if taken == BATCH_SIZE and not helped:
            # A backlog: ask for one more drain. Each spends much of its time waiting on PostgreSQL,
            # so a few in parallel go faster; a helper that finds the backlog gone ends at once.
            _send_processing_task()
            helped = True
        if taken == 0:
            _clear_doorbell()
            doorbell_set = False
        elif time.monotonic() > stop_at:
            _send_processing_task()
            return finished
        elif taken < BATCH_SIZE:
            # Let the burst's next requests commit: fewer, fuller batches for a moment's latency.
            time.sleep(BATCH_LINGER)


def _process_batch(broken):
    """Process a batch of waiting operations; returns how many finished and how many were taken.

    A batch that fails on an unexpected error is rolled back and processed again one operation at
    a time, so one bad operation cannot hold up the others: it is logged, added to `broken` (not
    taken again by this drain) and left assigning for the sweeper.
    """
    try:
        batch = _process_and_announce(exclude=broken, limit=BATCH_SIZE)
        return len(batch), len(batch)
    except Exception:
        logger.warning("An activation batch failed; processing it one operation at a time", exc_info=True)
    operation_ids = [operation.pk for operation in lock_waiting(None, broken, BATCH_SIZE)]
    finished = 0
    for operation_id in operation_ids:
        try:
            finished += len(_process_and_announce([operation_id]))
        except Exception:
            logger.exception("Activation %s failed; the sweeper will try it again", operation_id)
            broken.add(operation_id)
    return finished, len(operation_ids)


def _process_and_announce(operation_ids=None, **batch):
    """process_activations, then (once committed) the answers to the devices waiting for them."""
    operations = process_activations(operation_ids, **batch)
    results = [operation.to_dict() for operation in operations]
    transaction.on_commit(lambda: _announce_finished(results))
    return operations


# Housekeeping, run by Celery beat.


def resend_stuck_activations(now=None) -> int:
    """Ring the doorbell for operations left assigning for more than 30 s since it last rang for
    them, bypassing the Redis flag (the message it stands for may be lost).

    Covers a broker that was down when the request came, or a message lost with a worker. Returns how many.
    """
    now = now or timezone.now()
    stuck = ActivationOperation.objects.filter(
        pk__in=ActivationOperation.objects.filter(
            status=ActivationOperation.Status.ASSIGNING, sent_at__lt=now - STUCK_AFTER
        ).values("pk")[:SWEEP_BATCH]
    ).update(sent_at=now)
    if stuck:
        try:
            _send_processing_task()
        except Exception:
            logger.warning("Could not send the activation task; the next sweep tries again", exc_info=True)
    return stuck


def delete_finished_activations(now=None) -> int:
    """Delete operations that finished more than 7 days ago (their result has long been fetched),
    and the record of request signatures used more than a day ago (a copy of one is refused as
    stale by then: activation_proofs.USED_SIGNATURES_KEPT). Returns how many operations."""
    now = now or timezone.now()
    deleted, _ = ActivationOperation.objects.filter(finished_at__lt=now - KEEP_FINISHED).delete()
    UsedAttestationSignature.objects.filter(used_at__lt=now - USED_SIGNATURES_KEPT).delete()
    return deleted
