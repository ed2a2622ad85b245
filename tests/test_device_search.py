"""The space dashboard's Search box, filters and sort (devices/search.py), as a customer uses them."""

from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from devices.models import Device
from vendors.models import ApprovedIdentity

from .factories import (
    ActivatedDeviceFactory,
    ApprovedIdentityFactory,
    ClaimedDeviceFactory,
    DeviceModelFactory,
    SpaceFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def hub(space, device_model):
    identity = ApprovedIdentityFactory(
        device_model=device_model, identifier_1="SN-ABC123", identifier_2="02:00:0A:0B:0C:0D"
    )
    return ClaimedDeviceFactory(space=space, identity=identity, name="Lobby Hub")


@pytest.fixture
def display(space, device_model):
    cloud_model = DeviceModelFactory(vendor=device_model.vendor, cloud_id=True, name="Alpha Signage")
    identity = ApprovedIdentityFactory(device_model=cloud_model, identifier_1="ABCDEFGHJKMNPQRT")
    return ClaimedDeviceFactory(space=space, identity=identity, name="Reception Display")


@pytest.fixture
def others(space, device_model):
    return [ClaimedDeviceFactory(space=space, identity__device_model=device_model, name=f"Shelf {n}") for n in range(3)]


def names_found(client, space, **query):
    response = client.get(reverse("space-dashboard", args=[space.code]), query)
    assert response.status_code == 200
    return [device.name for device in response.context["devices"]]


@pytest.fixture
def signed_in(client, owner):
    client.force_login(owner)
    return client


@pytest.mark.parametrize("typed", ["SN-ABC123", "sn-abc123", " sn-abc 123 "])
def test_a_serial_typed_in_any_case_or_with_spaces_finds_the_device(signed_in, space, hub, others, typed):
    assert names_found(signed_in, space, q=typed) == ["Lobby Hub"]


@pytest.mark.parametrize("typed", ["02:00:0A:0B:0C:0D", "02-00-0a-0b-0c-0d", "0200.0a0b.0c0d", "02000a0b0c0d"])
def test_a_mac_in_colon_dash_cisco_dot_or_bare_form_finds_the_device(signed_in, space, hub, others, typed):
    assert names_found(signed_in, space, q=typed) == ["Lobby Hub"]


@pytest.mark.parametrize("typed", ["ABCDEFGHJKMNPQRT", "abcd-efgh-jkmn-pqrt", "ABCD EFGH JKMN PQRT"])
def test_a_cloud_id_with_or_without_dashes_finds_the_device(signed_in, space, display, hub, typed):
    assert names_found(signed_in, space, q=typed) == ["Reception Display"]


def test_a_name_is_matched_by_its_words_in_any_case_and_order(signed_in, space, hub, display, others):
    assert names_found(signed_in, space, q="hub lobby") == ["Lobby Hub"]
    assert names_found(signed_in, space, q="SHELF") == ["Shelf 0", "Shelf 1", "Shelf 2"]
    assert names_found(signed_in, space, q="lobby display") == []


def test_an_exact_identifier_match_comes_before_name_matches(signed_in, space, device_model):
    identity = ApprovedIdentityFactory(device_model=device_model, identifier_1="ROOF")
    ClaimedDeviceFactory(space=space, identity=identity, name="Zeta")
    ClaimedDeviceFactory(space=space, identity__device_model=device_model, name="Roof camera")
    assert names_found(signed_in, space, q="roof") == ["Zeta", "Roof camera"]


def test_search_never_finds_another_organizations_device(signed_in, space, hub, outsider, device_model):
    theirs = SpaceFactory(organization=outsider.memberships.get().organization)
    identity = ApprovedIdentityFactory(device_model=device_model, identifier_1="SN-THEIRS")
    ClaimedDeviceFactory(space=theirs, identity=identity, name="Lobby Hub of theirs")
    assert names_found(signed_in, space, q="SN-THEIRS") == []
    assert names_found(signed_in, space, q="lobby") == ["Lobby Hub"]


def test_the_connection_filter_uses_the_one_online_rule(signed_in, space, device_model):
    now = timezone.now()
    ActivatedDeviceFactory(space=space, identity__device_model=device_model, name="Up", last_seen_at=now)
    stale = now - Device.offline_after(device_model.heartbeat_interval) - timedelta(seconds=5)
    ActivatedDeviceFactory(space=space, identity__device_model=device_model, name="Down", last_seen_at=stale)
    ClaimedDeviceFactory(space=space, identity__device_model=device_model, name="New")
    assert names_found(signed_in, space, connection="online") == ["Up"]
    assert names_found(signed_in, space, connection="offline") == ["Down"]
    assert names_found(signed_in, space, connection="never") == ["New"]


def test_the_model_and_status_filters_narrow_the_list(signed_in, space, hub, display):
    assert names_found(signed_in, space, model=display.device_model_id) == ["Reception Display"]
    assert names_found(signed_in, space, status="claimed", q="hub") == ["Lobby Hub"]
    assert names_found(signed_in, space, status="registered") == []


def test_columns_sort_by_name_model_and_last_seen_either_way(signed_in, space, hub, display):
    ActivatedDeviceFactory(
        space=space, identity__device_model=hub.device_model, name="Attic", last_seen_at=timezone.now()
    )
    assert names_found(signed_in, space, sort="-name") == ["Reception Display", "Lobby Hub", "Attic"]
    assert names_found(signed_in, space, sort="model") == ["Reception Display", "Attic", "Lobby Hub"]
    assert names_found(signed_in, space, sort="-model") == ["Lobby Hub", "Attic", "Reception Display"]
    # Never-connected devices come last either way.
    assert names_found(signed_in, space, sort="last_seen")[0] == "Attic"
    assert names_found(signed_in, space, sort="-last_seen")[0] == "Attic"


def test_a_filter_value_that_is_not_a_choice_shows_an_error_not_a_500(signed_in, space, hub):
    response = signed_in.get(reverse("space-dashboard", args=[space.code]), {"connection": "sideways", "sort": "x"})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()


def test_the_page_shows_the_count_and_keeps_the_query_in_its_links(signed_in, space, hub, others):
    response = signed_in.get(reverse("space-dashboard", args=[space.code]), {"q": "shelf"})
    html = response.content.decode()
    assert "3 devices match" in html
    assert 'value="shelf"' in html
    assert "?q=shelf&amp;sort=-name" in html or "?q=shelf&amp;sort=name" in html


def test_htmx_gets_the_result_list_alone(signed_in, space, hub, others):
    response = signed_in.get(
        reverse("space-dashboard", args=[space.code]), {"q": "hub"}, headers={"HX-Request": "true"}
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="device-results">')
    assert "Lobby Hub" in html
    assert "Shelf 0" not in html


def test_the_bulk_bar_returns_to_the_filtered_view(signed_in, space, hub, others):
    response = signed_in.post(
        reverse("space-bulk-action", args=[space.code]) + "?q=shelf",
        {"action": "command", "command": "identify", "devices": [others[0].code]},
    )
    assert response.status_code == 302
    assert response.url == reverse("space-dashboard", args=[space.code]) + "?q=shelf"


def test_the_query_count_does_not_grow_with_the_number_of_devices(
    signed_in, space, device_model, django_assert_max_num_queries
):
    url = reverse("space-dashboard", args=[space.code])
    query = {"q": "shelf", "connection": "never", "sort": "-last_seen"}
    ClaimedDeviceFactory(space=space, identity__device_model=device_model, name="Shelf 0")
    with django_assert_max_num_queries(30) as few:
        signed_in.get(url, query)
    ClaimedDeviceFactory.create_batch(20, space=space, identity__device_model=device_model, name="Shelf n")
    with django_assert_max_num_queries(len(few.captured_queries)):
        signed_in.get(url, query)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite, the embedded default, may scan")
def test_an_identifier_search_in_any_format_is_an_index_lookup_on_the_identity_table(device_model):
    ApprovedIdentityFactory.create_batch(50, device_model=device_model)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE vendors_approvedidentity")
        # With a few rows a scan is cheapest; forbidding it shows the indexes answer this query shape.
        cursor.execute("SET LOCAL enable_seqscan = off")
    for typed in ["sn-000001", "02-00-00-00-00-01", "0200.0000.0001"]:
        plan = ApprovedIdentity.objects.matching(typed, device_model_ids=[device_model.pk]).explain()
        assert "Seq Scan" not in plan, plan
        assert "identity_unique_identifier" in plan, plan


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite, the embedded default, may scan")
def test_a_name_search_uses_the_trigram_index(space, device_model):
    ClaimedDeviceFactory.create_batch(30, space=space, identity__device_model=device_model)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE devices_device")
        cursor.execute("SET LOCAL enable_seqscan = off")
    plan = Device.objects.filter(name__icontains="lobby").explain()
    assert "device_name_trgm" in plan, plan


def test_a_viewer_searches_too_without_the_bulk_bar(client, viewer, space, hub, others):
    client.force_login(viewer)
    response = client.get(reverse("space-dashboard", args=[space.code]), {"q": "lobby"})
    assert [device.name for device in response.context["devices"]] == ["Lobby Hub"]
    assert 'id="bulk-form"' not in response.content.decode()


def test_an_outsider_searching_a_space_gets_404(client, outsider, space, hub):
    client.force_login(outsider)
    assert client.get(reverse("space-dashboard", args=[space.code]), {"q": "SN-ABC123"}).status_code == 404
