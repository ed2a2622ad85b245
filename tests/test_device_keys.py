"""Keys that die with ownership: a release (the customer's or forced by vendor staff) and a key
reset revoke the device key at once, and the unit activates afresh with a new one.

Units activate through the real device API (a key really derived on both sides), as in
test_device_activation.py; the racing tests run two rules at once in real transactions
(tests/racing.py).
"""

import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEntry, Role
from devices.actions import REACTIVATION_WINDOW, DeviceActionError, release_device, reset_device_key
from devices.activation import process_activations
from devices.authentication import authenticate_device
from devices.claims import claim_device
from devices.commands import deliver_pending_commands, send_command
from devices.models import ActivationOperation, Device, DeviceEvent
from devices.simulator import SimulatedDevice
from devices.telemetry import record_heartbeat
from vendors.attestation import b64url_encode
from vendors.models import Attestation

from .factories import ActivatedDeviceFactory, ApprovedIdentityFactory, MembershipFactory, VendorStaffFactory
from .racing import race
from .test_device_activation import activate, unit_of


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    """Rate-limit counters live in the shared cache; each test starts from zero."""
    cache.clear()


def _call(client, method, path, device, body=None):
    headers = {"Authorization": f"Bearer {b64url_encode(device.device_key)}"}
    if method == "GET":
        return client.get(path, headers=headers)
    return client.post(path, body or {}, content_type="application/json", headers=headers)


def every_device_call(client, device, command=None):
    """The answer to each device API call made with `device`'s key (a command's result needs its id)."""
    calls = [
        ("POST", "/api/v1/device/heartbeat", {"metrics": {"temperature": 21.5}}),
        ("GET", "/api/v1/device/commands", None),
        ("GET", "/api/v1/device/config", None),
    ]
    if command is not None:
        calls.append(("POST", f"/api/v1/device/commands/{command.code}/result", {"status": "succeeded"}))
    return [_call(client, method, path, device, body).status_code for method, path, body in calls]


@pytest.fixture
def claimed_unit(client, django_capture_on_commit_callbacks, owner, space):
    """A unit that activated through the API (the simulator holds its key), claimed into `space`."""
    identity = ApprovedIdentityFactory(device_model=space.organization.connected_vendors.get().device_models.get())
    unit = SimulatedDevice(unit_of(identity))
    unit.finish_activation(activate(client, unit, django_capture_on_commit_callbacks))
    device = claim_device(
        space=space, device_model=identity.device_model, identifiers=identity.identifiers, name="Hub", actor=owner
    )
    return unit, device


def _stored(device):
    return Device.objects.get(pk=device.pk)


# Release.


@pytest.mark.django_db
def test_a_release_kills_the_key_on_every_device_call(client, claimed_unit, owner):
    unit, device = claimed_unit
    command = send_command(device, name="reboot", arguments={}, actor=owner)
    assert every_device_call(client, unit, command) == [200, 200, 200, 200]
    command = send_command(device, name="reboot", arguments={}, actor=owner)

    before = timezone.now()
    release_device(device, actor=owner)

    assert every_device_call(client, unit, command) == [401, 401, 401, 401]
    released = _stored(device)
    assert (released.key_hash, released.key_issued_from) == ("", None)
    assert released.reactivation_allowed_until >= before + REACTIVATION_WINDOW, "the window opens for the next owner"
    assert released.status == Device.Status.REGISTERED, "it did register with the server once"


@pytest.mark.django_db
def test_a_release_forced_by_vendor_staff_kills_the_key(client, claimed_unit):
    unit, device = claimed_unit
    client.force_login(VendorStaffFactory(vendor=device.device_model.vendor).user)
    response = client.post(reverse("admin:devices_device_force_release", args=[device.pk]), {"reason": "Stolen unit"})
    assert response.status_code == 302
    client.logout()
    assert every_device_call(client, unit) == [401, 401, 401]
    assert (_stored(device).status, _stored(device).key_hash) == (Device.Status.REGISTERED, "")


@pytest.mark.django_db
def test_a_released_unit_activates_afresh_with_a_new_key(
    client, claimed_unit, owner, django_capture_on_commit_callbacks
):
    unit, device = claimed_unit
    release_device(device, actor=owner)

    again = SimulatedDevice(unit.unit)
    again.finish_activation(activate(client, again, django_capture_on_commit_callbacks))

    assert again.device_id == unit.device_id
    assert again.device_key != unit.device_key
    assert _call(client, "POST", "/api/v1/device/heartbeat", again, {"metrics": {}}).status_code == 200
    assert every_device_call(client, unit) == [401, 401, 401]
    assert _stored(device).reactivation_allowed_until is None, "the window closes with the re-activation"


@pytest.mark.django_db
def test_the_previous_owner_cannot_reach_a_released_and_reclaimed_unit(
    client, claimed_unit, owner, outsider, django_capture_on_commit_callbacks
):
    """The previous owner kept a copy of the device key after releasing the unit, and uses it to
    follow the unit into its next owner's account: receive their commands and configuration and
    report in its name. The copy must die with the release."""
    kept_copy, device = claimed_unit
    release_device(device, actor=owner)
    theirs = claim_device(
        space=outsider.memberships.get().organization.spaces.get(),
        device_model=device.device_model,
        identifiers=device.identity.identifiers,
        name="Their hub",
        actor=outsider,
    )
    command = send_command(theirs, name="reboot", arguments={}, actor=outsider)
    new_unit = SimulatedDevice(kept_copy.unit)
    new_unit.finish_activation(activate(client, new_unit, django_capture_on_commit_callbacks))

    assert every_device_call(client, kept_copy, command) == [401, 401, 401, 401]
    assert _stored(theirs).commands.get().status == "queued", "the command waits for the new owner's unit"
    assert every_device_call(client, new_unit, command) == [200, 200, 200, 200]


# Reset.


@pytest.mark.django_db
def test_a_key_reset_kills_the_key_and_the_unit_activates_again(
    client, claimed_unit, owner, django_capture_on_commit_callbacks
):
    unit, device = claimed_unit
    Device.objects.filter(pk=device.pk).update(key_issued_from="203.0.113.9")

    reset_device_key(_stored(device), actor=owner)

    assert every_device_call(client, unit) == [401, 401, 401]
    reset = _stored(device)
    assert (reset.status, reset.organization, reset.space) == (Device.Status.CLAIMED, device.organization, device.space)
    assert (reset.key_hash, reset.key_issued_from) == ("", None)
    assert reset.reactivation_allowed_until > timezone.now() + REACTIVATION_WINDOW - timedelta(minutes=1)
    event = reset.events.get(kind=DeviceEvent.Kind.KEY_RESET)
    assert (event.actor, event.details["issued_from"]) == (owner, "203.0.113.9")
    audit = AuditEntry.objects.get(organization=device.organization, action=AuditEntry.Action.DEVICE_KEY_RESET)
    assert (audit.actor, audit.target, audit.details["device"]) == (owner, "Hub", str(device.code))

    again = SimulatedDevice(unit.unit)
    again.finish_activation(activate(client, again, django_capture_on_commit_callbacks))
    assert again.device_id == str(device.code)
    assert _stored(device).status == Device.Status.CLAIMED, "the unit comes back to its owner"
    assert every_device_call(client, again) == [200, 200, 200]
    assert every_device_call(client, unit) == [401, 401, 401]


@pytest.mark.django_db
def test_a_device_without_a_key_cannot_be_reset(space, owner):
    device = ActivatedDeviceFactory(space=space, key_hash="", activated_at=None, key_issued_from=None)
    with pytest.raises(DeviceActionError, match="holds no key"):
        reset_device_key(device, actor=owner)
    assert not DeviceEvent.objects.filter(device=device).exists()
    assert _stored(device).reactivation_allowed_until is None


@pytest.mark.django_db
def test_a_key_reset_of_a_device_released_meanwhile_is_refused(space, owner, outsider):
    device = ActivatedDeviceFactory(space=space)
    stale = _stored(device)
    release_device(_stored(device), actor=owner)
    with pytest.raises(DeviceActionError, match="released"):
        reset_device_key(stale, actor=owner)
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.DEVICE_KEY_RESET).exists()


# The device page.


def _page(client, user, device, name="device-detail"):
    client.force_login(user)
    return client.get(reverse(name, kwargs={"code": device.code}))


@pytest.mark.django_db
def test_the_device_page_shows_when_and_from_where_the_key_was_issued(client, space, owner):
    device = ActivatedDeviceFactory(space=space, key_issued_from="2001:db8::5")
    page = _page(client, owner, device).content.decode()
    assert f"issued {device.activated_at:%Y-%m-%d %H:%M} UTC from" in page
    assert "2001:db8::5" in page
    assert "Reset the device key…" in page


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("state", "shown"),
    [("never activated", "none yet: awaiting first connection"), ("reset", "none: revoked, the device must activate")],
)
def test_the_device_page_says_when_the_device_holds_no_key(client, space, owner, state, shown):
    device = ActivatedDeviceFactory(space=space)
    if state == "reset":
        reset_device_key(device, actor=owner)
    else:
        Device.objects.filter(pk=device.pk).update(key_hash="", activated_at=None, key_issued_from=None)
    page = _page(client, owner, device).content.decode()
    key_row = re.search(r'<dd class="col-7" id="device-key">(.*?)</dd>', page, re.S).group(1)
    assert shown in key_row
    assert "198.51.100.7" not in key_row
    assert "Reset the device key…" not in page


@pytest.mark.django_db
def test_owners_reset_the_key_after_a_confirmation_page(client, space, owner):
    device = ActivatedDeviceFactory(space=space)
    confirmation = _page(client, owner, device, "device-reset-key")
    assert confirmation.status_code == 200
    assert "198.51.100.7" in confirmation.content.decode()
    assert _stored(device).has_key, "showing the confirmation changes nothing"

    response = client.post(reverse("device-reset-key", kwargs={"code": device.code}), follow=True)
    assert response.redirect_chain == [(reverse("device-detail", kwargs={"code": device.code}), 302)]
    assert "check here that its new key was issued from your network" in response.content.decode()
    assert not _stored(device).has_key
    again = client.post(reverse("device-reset-key", kwargs={"code": device.code}))
    assert again.status_code == 400, "a second reset finds no key"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("model", "who_else"),
    [
        ({}, "anyone who has read its label"),
        ({"device_model__claim_code": True}, "anyone who has read its label or kept its claim code"),
    ],
    ids=["serial + MAC", "claim code"],
)
def test_the_reset_confirmation_says_who_else_may_take_the_new_key(client, space, owner, model, who_else):
    device = ActivatedDeviceFactory(space=space, **{f"identity__{name}": value for name, value in model.items()})
    page = " ".join(_page(client, owner, device, "device-reset-key").content.decode().split())
    assert who_else in page
    assert "check on the device page that the new key was issued from your network" in page


@pytest.mark.django_db
def test_the_reset_confirmation_of_an_attested_model_says_only_the_unit_takes_the_new_key(client, space, owner):
    device = ActivatedDeviceFactory(space=space, identity__device_model__attestation=Attestation.FACTORY_SIGNATURE)
    page = " ".join(_page(client, owner, device, "device-reset-key").content.decode().split())
    assert "Only the device itself can take the new key" in page
    assert "anyone who has read" not in page


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN, Role.OPERATOR, Role.VIEWER])
def test_only_owners_and_admins_reset_the_key_even_with_a_forged_post(client, space, role):
    device = ActivatedDeviceFactory(space=space)
    member = MembershipFactory(organization=space.organization, role=role).user
    url = reverse("device-reset-key", kwargs={"code": device.code})
    page = _page(client, member, device).content.decode()
    confirmation, posted = client.get(url), client.post(url)
    if role in (Role.OWNER, Role.ADMIN):
        assert "Reset the device key…" in page
        assert (confirmation.status_code, posted.status_code) == (200, 302)
        assert not _stored(device).has_key
    else:
        assert "Reset the device key" not in page
        assert (confirmation.status_code, posted.status_code) == (403, 403)
        assert _stored(device).key_hash == device.key_hash
        assert not DeviceEvent.objects.filter(device=device, kind=DeviceEvent.Kind.KEY_RESET).exists()


@pytest.mark.django_db
def test_another_organization_cannot_reset_the_key(client, space, outsider):
    device = ActivatedDeviceFactory(space=space)
    client.force_login(outsider)
    url = reverse("device-reset-key", kwargs={"code": device.code})
    assert (client.get(url).status_code, client.post(url).status_code) == (404, 404)
    assert _stored(device).key_hash == device.key_hash


# Races.


def _waiting_operation(unit):
    """An activation request committed and waiting for the task, as the API leaves it."""
    request = unit.activation_request()
    return ActivationOperation.objects.create(
        vendor_slug=request["vendor"],
        model_slug=request["model"],
        identifiers=request["identifiers"],
        device_public_key=request["public_key"],
    )


def _activated_claimed_unit(space, owner):
    identity = ApprovedIdentityFactory(device_model=space.organization.connected_vendors.get().device_models.get())
    unit = SimulatedDevice(unit_of(identity))
    (operation,) = process_activations([_waiting_operation(unit).pk])
    unit.finish_activation(operation.to_dict())
    device = claim_device(
        space=space, device_model=identity.device_model, identifiers=identity.identifiers, name="Hub", actor=owner
    )
    return unit, device


@pytest.mark.django_db(transaction=True)
def test_a_heartbeat_racing_a_key_reset_does_not_get_through_with_the_old_key(space, owner, settings):
    settings.HEARTBEAT_BATCHING = False  # written directly, as while Redis is down (batched: test_heartbeat_intake)
    unit, device = _activated_claimed_unit(space, owner)
    Device.objects.filter(pk=device.pk).update(online=False, last_seen_at=None)
    authenticated = authenticate_device(b64url_encode(unit.device_key))  # before the reset commits

    reset, heartbeat, overlapped = race(
        lambda: reset_device_key(_stored(device), actor=owner),
        lambda: record_heartbeat(authenticated, metrics={"temperature": 21.5}),
    )

    assert overlapped, "the heartbeat waited for the reset"
    assert not isinstance(reset, Exception), reset
    assert heartbeat is None, "the heartbeat is answered as a wrong key"
    after = _stored(device)
    assert (after.online, after.last_seen_at) == (False, None), "the old key marked nothing"
    assert not after.heartbeats.exists()
    assert not after.events.filter(kind=DeviceEvent.Kind.BACK_ONLINE).exists()


@pytest.mark.django_db(transaction=True)
def test_commands_fetched_with_a_key_reset_meanwhile_hand_out_nothing(space, owner):
    unit, device = _activated_claimed_unit(space, owner)
    authenticated = authenticate_device(b64url_encode(unit.device_key))
    reset_device_key(_stored(device), actor=owner)
    send_command(_stored(device), name="reboot", arguments={}, actor=owner)

    assert deliver_pending_commands(authenticated) == []
    assert _stored(device).commands.get().status == "queued"


@pytest.mark.django_db(transaction=True)
def test_an_activation_waiting_for_a_release_activates_afresh_with_the_window_it_opened(space, owner):
    unit, device = _activated_claimed_unit(space, owner)
    fresh = SimulatedDevice(unit.unit)
    operation = _waiting_operation(fresh)

    released, activated, overlapped = race(
        lambda: release_device(_stored(device), actor=owner), lambda: process_activations([operation.pk])
    )

    assert overlapped, "the activation waited for the release"
    assert not isinstance(released, Exception), released
    (finished,) = activated
    assert finished.status == ActivationOperation.Status.ASSIGNED, finished.error_message
    fresh.finish_activation(ActivationOperation.objects.select_related("device").get(pk=operation.pk).to_dict())
    assert authenticate_device(b64url_encode(fresh.device_key)).pk == device.pk
    assert authenticate_device(b64url_encode(unit.device_key)) is None
    after = _stored(device)
    assert (after.status, after.organization_id) == (Device.Status.REGISTERED, None)


@pytest.mark.django_db(transaction=True)
def test_a_release_waiting_for_an_activation_kills_the_key_it_just_issued(space, owner):
    unit, device = _activated_claimed_unit(space, owner)
    Device.objects.filter(pk=device.pk).update(reactivation_allowed_until=timezone.now() + REACTIVATION_WINDOW)
    fresh = SimulatedDevice(unit.unit)
    operation = _waiting_operation(fresh)

    activated, released, overlapped = race(
        lambda: process_activations([operation.pk]), lambda: release_device(_stored(device), actor=owner)
    )

    assert overlapped, "the release waited for the activation"
    assert not isinstance(released, Exception), released
    (finished,) = activated
    assert finished.status == ActivationOperation.Status.ASSIGNED, finished.error_message
    fresh.finish_activation(ActivationOperation.objects.select_related("device").get(pk=operation.pk).to_dict())
    assert authenticate_device(b64url_encode(fresh.device_key)) is None, "the release killed the newest key too"
    assert authenticate_device(b64url_encode(unit.device_key)) is None
    assert _stored(device).reactivation_allowed_until > timezone.now()
