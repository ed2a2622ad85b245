"""Offline alert e-mails: preferences and their defaults by role, batching, the interval, the
signed unsubscribe link, narrowing to spaces, and nothing about another organization's devices."""

from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEntry, Membership, Role
from alerts.preferences import alert_choice, set_alert_preference, unsubscribe_token
from alerts.sending import send_offline_alert
from devices.heartbeat_intake import write_buffered_heartbeats
from devices.models import Device, DeviceEvent
from devices.tasks import record_connectivity_changes
from devices.telemetry import record_heartbeat
from tests.factories import ActivatedDeviceFactory, MembershipFactory, SpaceFactory


def _online(space, count=1):
    return [ActivatedDeviceFactory(space=space, online=True, last_seen_at=timezone.now()) for _ in range(count)]


def _go_silent(devices):
    long_ago = timezone.now() - timedelta(hours=1)
    Device.objects.filter(pk__in=[d.pk for d in devices]).update(last_seen_at=long_ago)


def _sweep():
    record_connectivity_changes()


def _mails_to(user):
    return [message for message in mail.outbox if message.to == [user.email]]


def _membership(user):
    return Membership.objects.get(user=user)


def test_alerts_are_on_for_owners_and_admins_and_off_for_operators_and_viewers(owner, admin_member, operator, viewer):
    assert alert_choice(_membership(owner)) == (True, [])
    assert alert_choice(_membership(admin_member)) == (True, [])
    assert alert_choice(_membership(operator)) == (False, [])
    assert alert_choice(_membership(viewer)) == (False, [])


def test_many_devices_going_offline_send_one_email_per_subscribed_member(space, owner, admin_member, viewer):
    devices = _online(space, 30)
    _go_silent(devices)
    _sweep()
    assert len(_mails_to(owner)) == 1
    assert len(_mails_to(admin_member)) == 1
    assert _mails_to(viewer) == [], "viewers are off by default"
    (message,) = _mails_to(owner)
    assert "30 offline" in message.subject
    assert devices[0].name in message.body
    assert reverse("device-detail", kwargs={"code": devices[0].code}) in message.body


def test_a_viewer_who_turns_alerts_on_gets_them(space, viewer):
    set_alert_preference(_membership(viewer), enabled=True)
    _go_silent(_online(space))
    _sweep()
    assert len(_mails_to(viewer)) == 1


def test_an_owner_who_turns_alerts_off_gets_none(space, owner):
    set_alert_preference(_membership(owner), enabled=False)
    _go_silent(_online(space))
    _sweep()
    assert _mails_to(owner) == []


def test_a_second_change_within_the_interval_waits_for_the_next_email(space, owner, settings):
    first, second = _online(space, 2)
    Device.objects.filter(pk=first.pk).update(name="Lobby camera")
    Device.objects.filter(pk=second.pk).update(name="Gate camera")
    _go_silent([first])
    _sweep()
    _go_silent([second])
    _sweep()
    assert len(_mails_to(owner)) == 1, "at most one e-mail per interval"
    settings.ALERT_EMAIL_INTERVAL = 0
    _sweep()
    later = _mails_to(owner)
    assert len(later) == 2
    assert "Gate camera" in later[1].body
    assert "Lobby camera" not in later[1].body, "only what changed since the last one"


def test_a_device_back_online_is_reported_in_the_next_email(space, owner, settings):
    settings.ALERT_EMAIL_INTERVAL = 0
    (device,) = _online(space)
    _go_silent([device])
    _sweep()
    device.refresh_from_db()
    record_heartbeat(device, metrics={})
    write_buffered_heartbeats()
    _sweep()
    back = _mails_to(owner)[-1]
    assert "1 back online" in back.subject
    assert device.name in back.body


def test_a_sweep_sent_twice_sends_nothing_more(space, owner, settings):
    settings.ALERT_EMAIL_INTERVAL = 0
    _go_silent(_online(space))
    now = timezone.now()
    _sweep()
    assert not send_offline_alert(_membership(owner).pk, until=now), "already covered"
    assert len(_mails_to(owner)) == 1


def test_nothing_is_sent_for_spaces_a_member_narrowed_away(organization, space, owner):
    other_space = SpaceFactory(organization=organization, name="Warehouse")
    set_alert_preference(_membership(owner), enabled=True, spaces=[other_space])
    _go_silent(_online(space, 3))
    _sweep()
    assert _mails_to(owner) == []
    (watched,) = _online(other_space)
    _go_silent([watched])
    _sweep()
    (message,) = _mails_to(owner)
    assert "1 offline" in message.subject


def test_nothing_is_sent_about_another_organizations_devices(space, owner, outsider):
    _go_silent(_online(space, 2))
    _sweep()
    assert _mails_to(outsider) == []
    assert len(_mails_to(owner)) == 1


def test_alerts_write_nothing_in_the_audit_log(organization, space, owner):
    before = AuditEntry.objects.filter(organization=organization).count()
    _go_silent(_online(space, 5))
    _sweep()
    set_alert_preference(_membership(owner), enabled=False)
    assert AuditEntry.objects.filter(organization=organization).count() == before


def test_every_email_has_a_one_click_unsubscribe_that_works_without_signing_in(client, space, owner):
    _go_silent(_online(space))
    _sweep()
    (message,) = _mails_to(owner)
    link = message.extra_headers["List-Unsubscribe"].strip("<>")
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert link in message.body
    assert client.get(link).status_code == 200
    assert alert_choice(_membership(owner))[0], "opening the link only asks"
    assert client.post(link, {"List-Unsubscribe": "One-Click"}).status_code == 200
    assert alert_choice(_membership(owner))[0] is False


@pytest.mark.parametrize("token", ["garbage", "1:tampered-signature", "%00"])
def test_a_tampered_unsubscribe_link_gets_a_clear_page_and_changes_nothing(client, owner, token):
    real = unsubscribe_token(_membership(owner))
    for attempt in (token, real[:-2] + "xx"):
        response = client.post(reverse("alert-unsubscribe", kwargs={"token": attempt}))
        assert response.status_code == 400
        assert "not valid" in response.content.decode()
    assert alert_choice(_membership(owner))[0] is True


def test_the_unsubscribe_link_of_a_member_who_left_is_refused(client, organization):
    membership = MembershipFactory(organization=organization, role=Role.ADMIN)
    token = unsubscribe_token(membership)
    membership.delete()
    assert client.get(reverse("alert-unsubscribe", kwargs={"token": token})).status_code == 400


def test_a_member_chooses_alerts_and_spaces_on_the_preferences_page(client, organization, space, viewer):
    client.force_login(viewer)
    page = client.get(reverse("alert-preferences"))
    assert organization.name in page.content.decode()
    prefix = str(organization.code)
    response = client.post(
        reverse("alert-preferences"),
        {"organization": prefix, f"{prefix}-enabled": "on", f"{prefix}-spaces": [space.pk]},
    )
    assert response.status_code == 302
    assert alert_choice(_membership(viewer)) == (True, [space])


def test_the_preferences_page_refuses_another_organizations_spaces_and_code(client, space, viewer, outsider):
    other = _membership(outsider).organization
    other_space = other.spaces.get()
    client.force_login(viewer)
    prefix = str(space.organization.code)
    refused = client.post(
        reverse("alert-preferences"),
        {"organization": prefix, f"{prefix}-enabled": "on", f"{prefix}-spaces": [other_space.pk]},
    )
    assert refused.status_code == 400
    for code in (str(other.code), "not-a-code"):
        assert client.post(reverse("alert-preferences"), {"organization": code}).status_code == 404
    assert alert_choice(_membership(viewer)) == (False, [])
    assert alert_choice(_membership(outsider)) == (True, [])


def test_the_sweep_marks_a_fleet_larger_than_one_batch(space, owner, monkeypatch):
    monkeypatch.setattr("devices.telemetry.SWEEP_BATCH", 2)
    devices = _online(space, 5)
    _go_silent(devices)
    _sweep()
    assert not Device.objects.filter(online=True).exists()
    assert DeviceEvent.objects.filter(kind=DeviceEvent.Kind.WENT_OFFLINE).count() == 5
    (message,) = _mails_to(owner)
    assert "5 offline" in message.subject
