"""Devices waiting for their answer (`?wait=N`) hold web threads: at most a few per process do."""

import http.client
import threading
from concurrent.futures import ThreadPoolExecutor

from django.core.cache import cache

from devices import activation_queue
from devices.activation_queue import doorbell_key, process_waiting_activations
from devices.simulator import HttpClient, SimulatedDevice
from portal.redis import redis_client

from .conftest import wait_for
from .factories import ApprovedIdentityFactory


def _unit(identity):
    return {
        "vendor": identity.device_model.vendor.slug,
        "model": identity.device_model.slug,
        "identifiers": identity.identifiers,
    }


def _post_activation(client, device, wait):
    response = client.request("POST", f"/api/v1/activations?wait={wait}", device.activation_request())
    return response.status, response.headers.get("retry-after"), response.body


def test_devices_beyond_the_waiter_cap_get_202_at_once_while_pages_answer(live_server, settings):
    settings.ACTIVATION_WAITERS_PER_PROCESS = 2
    cache.clear()
    # As if a processing task were on its way: the operations stay waiting until the test processes them.
    redis_client().set(doorbell_key(), 1, ex=60)
    devices = [SimulatedDevice(_unit(ApprovedIdentityFactory())) for _ in range(4)]
    client = HttpClient(live_server.url)
    with ThreadPoolExecutor(max_workers=4) as pool:
        seated = [pool.submit(_post_activation, client, device, 10) for device in devices[:2]]
        wait_for(lambda: activation_queue._waiting == 2, timeout=10)

        beyond = [_post_activation(client, device, 10) for device in devices[2:]]
        assert [(status, retry_after, body["status"]) for status, retry_after, body in beyond] == [
            (202, "1", "assigning")
        ] * 2
        page = http.client.HTTPConnection(live_server.thread.host, live_server.thread.port, timeout=5)
        page.request("GET", "/accounts/login/")
        answer = page.getresponse()
        assert (answer.status, b"password" in answer.read()) == (200, True), "a portal page answers meanwhile"
        assert not any(future.done() for future in seated), "the two seated devices are still waiting"

        assert process_waiting_activations() == 4
        answered = [future.result(timeout=15) for future in seated]
    assert [(status, body["status"]) for status, _, body in answered] == [(200, "assigned")] * 2
    assert activation_queue._waiting == 0, "every seat is given back"
    cache.clear()


def test_the_waiter_count_is_shared_by_the_threads_of_a_process(settings):
    settings.ACTIVATION_WAITERS_PER_PROCESS = 3
    inside, release = threading.Barrier(4), threading.Event()
    seats = []

    def take_a_seat():
        with activation_queue._waiting_seat() as seated:
            seats.append(seated)
            inside.wait(timeout=5)
            release.wait(timeout=5)

    threads = [threading.Thread(target=take_a_seat) for _ in range(3)]
    for thread in threads:
        thread.start()
    inside.wait(timeout=5)
    with activation_queue._waiting_seat() as fourth:
        assert fourth is False
    release.set()
    for thread in threads:
        thread.join()
    assert seats == [True] * 3
