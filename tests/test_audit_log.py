"""The organization audit log: written by record_audit from every rule, shown filtered and
paginated to owners and admins, exported as CSV."""

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.audit import record_audit
from accounts.models import AuditEntry
from devices.actions import move_device, release_device, rename_device
from devices.claims import claim_device

from .factories import ApprovedIdentityFactory, ClaimedDeviceFactory, SpaceFactory

pytestmark = pytest.mark.django_db


def _actions(organization):
    return list(AuditEntry.objects.filter(organization=organization).order_by("id").values_list("action", flat=True))


def test_claim_rename_move_and_release_are_logged_with_actor(space, owner, device_model):
    identity = ApprovedIdentityFactory(device_model=device_model)
    device = claim_device(
        space=space,
        device_model=device_model,
        identifiers={"serial_number": identity.identifier_1, "mac_address": identity.identifier_2},
        name="Screen",
        actor=owner,
    )
    rename_device(device, name="Lobby screen", actor=owner)
    move_device(device, space=SpaceFactory(organization=space.organization, name="Hall"), actor=owner)
    release_device(device, actor=owner)
    assert _actions(space.organization) == ["device_claimed", "device_renamed", "device_moved", "device_released"]
    released = AuditEntry.objects.get(action=AuditEntry.Action.DEVICE_RELEASED)
    assert (released.actor, released.actor_email, released.target) == (owner, owner.email, "Lobby screen")
    assert released.details["space"] == "Hall"


def test_a_failed_claim_writes_nothing(space, owner, device_model):
    with pytest.raises(Exception, match="not approved"):
        claim_device(
            space=space,
            device_model=device_model,
            identifiers={"serial_number": "SN-999999", "mac_address": "02:00:00:00:99:99"},
            name="Nope",
            actor=owner,
        )
    assert _actions(space.organization) == []


def test_the_log_page_filters_by_action_actor_and_date(client, organization, owner, admin_member):
    record_audit(organization_id=organization.pk, actor=owner, action="space_created", target="Old space")
    AuditEntry.objects.update(created_at=timezone.now() - timedelta(days=10))
    record_audit(organization_id=organization.pk, actor=owner, action="space_created", target="New space")
    record_audit(organization_id=organization.pk, actor=admin_member, action="device_renamed", target="Renamed one")
    client.force_login(owner)
    url = reverse("audit-log", args=[organization.code])

    def targets(**query):
        return [entry.target for entry in client.get(url, query).context["entries"]]

    assert targets() == ["Renamed one", "New space", "Old space"]
    assert targets(action="space_created") == ["New space", "Old space"]
    assert targets(actor=admin_member.email) == ["Renamed one"]
    assert targets(since=(timezone.now() - timedelta(days=1)).date().isoformat(), action="space_created") == [
        "New space"
    ]


def test_bad_filters_are_field_errors_not_errors(client, organization, owner):
    client.force_login(owner)
    response = client.get(
        reverse("audit-log", args=[organization.code]),
        {"action": "nope", "since": "not-a-date", "until": "2020-01-01", "actor": "x"},
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.text
    assert "Enter a valid date" in response.text


def test_the_log_is_paginated_with_a_constant_number_of_queries(
    client, organization, owner, django_assert_max_num_queries
):
    AuditEntry.objects.bulk_create(
        AuditEntry(
            organization=organization, actor=owner, actor_email=owner.email, action="space_created", target=f"S{i}"
        )
        for i in range(120)
    )
    client.force_login(owner)
    with django_assert_max_num_queries(10):
        response = client.get(reverse("audit-log", args=[organization.code]), {"page": 2})
    assert len(response.context["entries"]) == 50
    assert "Page 2" in response.text
    assert response.context["page_obj"].has_next()
    assert response.context["page_obj"].has_previous()


def test_the_last_page_has_no_next_and_a_page_past_the_end_is_404(client, organization, owner):
    AuditEntry.objects.bulk_create(
        AuditEntry(organization=organization, actor=owner, action="space_created", target=f"S{i}") for i in range(100)
    )
    client.force_login(owner)
    url = reverse("audit-log", args=[organization.code])
    last = client.get(url, {"page": 2})
    assert len(last.context["entries"]) == 50
    assert not last.context["page_obj"].has_next()
    assert client.get(url, {"page": 3}).status_code == 404
    assert client.get(url, {"page": "abc"}).status_code == 404


def test_the_actor_filter_offers_every_actor_including_former_members(organization, owner, viewer):
    for actor in (viewer, owner, viewer):
        record_audit(organization_id=organization.pk, actor=actor, action="space_created", target="S")
    record_audit(organization_id=organization.pk, actor=None, action="space_created", target="by the system")
    viewer.delete()
    assert AuditEntry.objects.actor_emails(organization.pk) == sorted([owner.email, viewer.email])


def test_the_csv_export_has_the_filtered_rows_and_defuses_formulas(client, organization, owner):
    record_audit(organization_id=organization.pk, actor=owner, action="device_renamed", target="=HYPERLINK(1)")
    record_audit(organization_id=organization.pk, actor=owner, action="space_created", target="Lobby")
    client.force_login(owner)
    response = client.get(reverse("audit-log-csv", args=[organization.code]), {"action": "device_renamed"})
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["time", "actor", "action", "target", "details"]
    assert [row[1:4] for row in rows[1:]] == [[owner.email, "device_renamed", "'=HYPERLINK(1)"]]


def test_operators_and_viewers_cannot_read_the_log(client, organization, operator):
    client.force_login(operator)
    assert client.get(reverse("audit-log", args=[organization.code])).status_code == 403
    assert client.get(reverse("audit-log-csv", args=[organization.code])).status_code == 403


def test_another_organizations_entries_never_show(client, organization, owner, outsider):
    other = outsider.memberships.get().organization
    record_audit(organization_id=other.pk, actor=outsider, action="space_created", target="Secret space")
    ClaimedDeviceFactory(space=SpaceFactory(organization=organization))
    client.force_login(owner)
    assert "Secret space" not in client.get(reverse("audit-log", args=[organization.code])).text
    export = client.get(reverse("audit-log-csv", args=[organization.code]))
    assert b"Secret space" not in b"".join(export.streaming_content)
