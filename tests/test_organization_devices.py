"""The organization-wide Devices page, its CSV export, and the Overview's per-space counts."""

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from .factories import ActivatedDeviceFactory, ApprovedIdentityFactory, ClaimedDeviceFactory, SpaceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def lobby(organization):
    return SpaceFactory(organization=organization, name="Lobby")


@pytest.fixture
def warehouse(organization):
    return SpaceFactory(organization=organization, name="Warehouse")


@pytest.fixture
def hub(lobby, device_model):
    identity = ApprovedIdentityFactory(device_model=device_model, identifier_1="SN-ABC123")
    return ClaimedDeviceFactory(space=lobby, identity=identity, name="Lobby Hub")


@pytest.fixture
def shelves(warehouse, device_model):
    return [
        ClaimedDeviceFactory(space=warehouse, identity__device_model=device_model, name=f"Shelf {n}") for n in (1, 2)
    ]


@pytest.fixture
def signed_in(client, owner):
    client.force_login(owner)
    return client


def names_found(client, organization, **query):
    response = client.get(reverse("organization-devices", args=[organization.code]), query)
    assert response.status_code == 200
    return [device.name for device in response.context["devices"]]


def exported(client, organization, **query):
    response = client.get(reverse("organization-devices-csv", args=[organization.code]), query)
    assert response.status_code == 200
    assert response.streaming
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode(), newline="")))


def test_the_page_lists_the_devices_of_every_space(signed_in, organization, hub, shelves):
    assert names_found(signed_in, organization) == ["Lobby Hub", "Shelf 1", "Shelf 2"]


def test_search_finds_a_serial_in_any_case_across_spaces(signed_in, organization, hub, shelves):
    assert names_found(signed_in, organization, q="sn-abc 123") == ["Lobby Hub"]
    assert names_found(signed_in, organization, q="SHELF") == ["Shelf 1", "Shelf 2"]


def test_the_space_filter_narrows_to_one_space(signed_in, organization, warehouse, hub, shelves):
    assert names_found(signed_in, organization, space=warehouse.code) == ["Shelf 1", "Shelf 2"]
    assert names_found(signed_in, organization, space=warehouse.code, q="hub") == []


def test_a_space_of_another_organization_is_an_error_not_a_filter(signed_in, organization, outsider, hub):
    foreign = outsider.memberships.get().organization.spaces.get()
    response = signed_in.get(reverse("organization-devices", args=[organization.code]), {"space": foreign.code})
    assert response.status_code == 200
    assert response.context["search_form"].errors["space"]
    response = signed_in.get(reverse("organization-devices", args=[organization.code]), {"space": "not-a-code"})
    assert response.status_code == 200
    assert response.context["search_form"].errors["space"]


def test_search_never_lists_another_organizations_devices(signed_in, organization, outsider, hub, device_model):
    foreign_space = outsider.memberships.get().organization.spaces.get()
    identity = ApprovedIdentityFactory(device_model=device_model, identifier_1="SN-FOREIGN")
    ClaimedDeviceFactory(space=foreign_space, identity=identity, name="Lobby Hub elsewhere")
    assert names_found(signed_in, organization, q="lobby hub") == ["Lobby Hub"]
    assert names_found(signed_in, organization, q="sn-foreign") == []
    assert [row[0] for row in exported(signed_in, organization)[1:]] == ["Lobby Hub"]


def test_an_outsider_gets_404_for_the_page_and_its_export(client, outsider, organization, hub):
    client.force_login(outsider)
    assert client.get(reverse("organization-devices", args=[organization.code])).status_code == 404
    assert client.get(reverse("organization-devices-csv", args=[organization.code])).status_code == 404


def test_the_page_shows_the_space_column_and_keeps_the_query_in_its_links(signed_in, organization, hub, shelves):
    response = signed_in.get(reverse("organization-devices", args=[organization.code]), {"q": "shelf"})
    html = response.content.decode()
    assert "2 devices match" in html
    assert ">Warehouse</a>" in html
    assert 'value="shelf"' in html
    assert reverse("organization-devices-csv", args=[organization.code]) + "?q=shelf" in html
    assert 'id="bulk-form"' not in html


def test_htmx_gets_the_result_list_alone(signed_in, organization, hub, shelves):
    response = signed_in.get(
        reverse("organization-devices", args=[organization.code]), {"q": "hub"}, headers={"HX-Request": "true"}
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="device-results">')
    assert "Lobby Hub" in html
    assert "Shelf 1" not in html


def test_the_overview_links_to_the_list_and_its_search_box_goes_there(signed_in, organization, hub):
    html = signed_in.get(reverse("organization-overview", args=[organization.code])).content.decode()
    url = reverse("organization-devices", args=[organization.code])
    assert f'action="{url}"' in html
    assert f'href="{url}"' in html


def test_the_export_has_the_filtered_list_with_its_columns(signed_in, organization, hub, shelves, device_model):
    seen = timezone.now() - timedelta(seconds=5)
    screen = ActivatedDeviceFactory(
        space=hub.space, identity__device_model=device_model, name="Lobby Screen", last_seen_at=seen
    )
    table = exported(signed_in, organization, q="lobby")
    assert table[0] == ["name", "space", "vendor", "model", "identifiers", "status", "connection", "last seen"]
    vendor, model = device_model.vendor.name, device_model.name
    assert table[1:] == [
        ["Lobby Hub", "Lobby", vendor, model, str(hub.identity), "Claimed", "Never connected", ""],
        ["Lobby Screen", "Lobby", vendor, model, str(screen.identity), "Claimed", "Online", seen.isoformat()],
    ]


def test_the_export_neutralizes_a_device_name_that_is_a_formula(signed_in, organization, lobby, device_model):
    ClaimedDeviceFactory(space=lobby, identity__device_model=device_model, name="=cmd|' /C calc'!A0")
    rows = exported(signed_in, organization)[1:]
    assert rows[0][0] == "'=cmd|' /C calc'!A0"


def test_the_overview_counts_devices_online_and_offline_per_space(signed_in, organization, lobby, warehouse, hub):
    now = timezone.now()
    ActivatedDeviceFactory(space=lobby, identity__device_model=hub.device_model, last_seen_at=now)
    ActivatedDeviceFactory(space=lobby, identity__device_model=hub.device_model, last_seen_at=now - timedelta(days=1))
    ActivatedDeviceFactory(space=warehouse, identity__device_model=hub.device_model, last_seen_at=now)
    response = signed_in.get(reverse("organization-overview", args=[organization.code]))
    counts = {s.name: (s.device_count, s.online_count, s.offline_count) for s in response.context["spaces"]}
    assert counts == {"Lobby": (3, 1, 1), "Warehouse": (1, 1, 0)}
    assert "1 online" in response.content.decode()


def test_the_overview_query_count_does_not_grow_with_the_number_of_spaces(
    signed_in, organization, device_model, django_assert_max_num_queries
):
    url = reverse("organization-overview", args=[organization.code])
    ActivatedDeviceFactory(space__organization=organization, identity__device_model=device_model)
    with django_assert_max_num_queries(30) as few:
        signed_in.get(url)
    for _ in range(10):
        ActivatedDeviceFactory(space=SpaceFactory(organization=organization), identity__device_model=device_model)
    with django_assert_max_num_queries(len(few.captured_queries)):
        signed_in.get(url)


def test_the_list_query_count_does_not_grow_with_the_number_of_devices(
    signed_in, organization, warehouse, device_model, django_assert_max_num_queries
):
    url = reverse("organization-devices", args=[organization.code])
    query = {"q": "shelf", "space": warehouse.code, "connection": "offline"}
    ActivatedDeviceFactory(space=warehouse, identity__device_model=device_model, name="Shelf 0")
    with django_assert_max_num_queries(30) as few:
        signed_in.get(url, query)
    ActivatedDeviceFactory.create_batch(20, space=warehouse, identity__device_model=device_model, name="Shelf n")
    with django_assert_max_num_queries(len(few.captured_queries)):
        signed_in.get(url, query)
