"""A request whose kept database connection PostgreSQL closed meanwhile (as a restart does) runs
again once on a new one; once a statement of it reached the database, it is answered 503 instead.

Connections are kept between requests (CONN_MAX_AGE) without a health check, so the first
statement after a restart is the one that finds the connection closed. Here the server closes it
(pg_terminate_backend) without a restart; tests/test_faults.py restarts and stops a PostgreSQL of
its own under the real processes.
"""

import time

import pytest
from django.conf import settings
from django.db import connection
from django.urls import reverse

from .conftest import connect_to_test_database, release_pooled_connections
from .factories import ApprovedIdentityFactory
from .test_activation_worker import unit_of

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def no_broken_connection_left(transactional_db):
    """The test client, unlike a server, does not retire a broken connection after a request."""
    yield
    connection.close()


def close_from_the_server(connection_to_close):
    """What a PostgreSQL restart does to a kept connection: the server ends its backend (57P01).
    Behind a transaction pooler, whose sessions with PostgreSQL outlive its clients', what a restart
    of the pooler does: it closes its client connections (release_pooled_connections)."""
    if settings.DATABASE_POOLER == "transaction":
        release_pooled_connections(connection_to_close.settings_dict["NAME"])
        return
    pid = connection_to_close.connection.info.backend_pid
    with connect_to_test_database(autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
        while other.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()[0]:
            time.sleep(0.01)


def test_a_page_on_a_connection_the_server_closed_is_answered(client, organization, owner):
    client.force_login(owner)
    overview = reverse("organization-overview", args=[organization.code])
    assert client.get(overview).status_code == 200
    close_from_the_server(connection)

    response = client.get(overview)

    assert response.status_code == 200
    assert organization.name in response.text


def test_an_activation_on_a_connection_the_server_closed_is_accepted_once(client, device_model):
    from devices.models import ActivationOperation
    from devices.simulator import SimulatedDevice

    request = SimulatedDevice(unit_of(ApprovedIdentityFactory(device_model=device_model))).activation_request()
    close_from_the_server(connection)

    response = client.post("/api/v1/activations", request, content_type="application/json")

    assert response.status_code == 202
    assert ActivationOperation.objects.count() == 1


def test_a_request_that_reached_the_database_before_its_connection_broke_is_answered_503_not_run_again(
    client, organization, owner
):
    client.force_login(owner)
    overview = reverse("organization-overview", args=[organization.code])
    assert client.get(overview).status_code == 200
    statements = []

    def break_after_the_first_statement(execute, sql, params, many, context):
        statements.append(sql)
        result = execute(sql, params, many, context)
        if len(statements) == 1:
            close_from_the_server(context["connection"])
        return result

    with connection.execute_wrapper(break_after_the_first_statement):
        response = client.get(overview)

    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert response["Content-Type"].startswith("text/html")
    assert len(statements) == 2, "the statement that failed, and no second run"


def test_a_device_waiting_for_its_activation_when_the_connection_breaks_is_told_where_to_poll(client, device_model):
    """Its operation is committed: answering 503 would make the device start a second one."""
    from devices.activation_queue import doorbell_key
    from devices.models import ActivationOperation
    from devices.simulator import SimulatedDevice
    from portal.redis import redis_client

    redis_client().set(doorbell_key(), 1, ex=60)  # as if a task were on its way: the operation stays waiting
    request = SimulatedDevice(unit_of(ApprovedIdentityFactory(device_model=device_model))).activation_request()
    statements = []

    def break_after_the_insert(execute, sql, params, many, context):
        statements.append(sql)
        result = execute(sql, params, many, context)
        if sql.lstrip().upper().startswith("INSERT"):
            close_from_the_server(context["connection"])
        return result

    with connection.execute_wrapper(break_after_the_insert):
        response = client.post("/api/v1/activations?wait=0.3", request, content_type="application/json")
    connection.close()  # as a server retires a broken connection after the request

    assert response.status_code == 202
    operation = ActivationOperation.objects.get()
    assert response["Location"] == f"/api/v1/activations/{operation.pk}"
    assert response.json() == {"operation_id": str(operation.pk), "status": "assigning"}
    redis_client().delete(doorbell_key())
