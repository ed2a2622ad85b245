"""Release requests, both ways: an organization refused a claim because another holds the unit asks
the holder to release it; the holder releases or declines; the requester hears the answer and
claims at once. Neither side learns who the other is: the leak tests come first."""

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEntry, Role
from devices.actions import DeviceActionError, release_device
from devices.claims import ReservedForRequester, claim_device
from devices.models import Device, DeviceEvent
from portal.ratelimit import RateLimit
from releaserequests import rules
from releaserequests.models import ReleaseRequest
from vendors.claim_codes import generate_claim_code

from .conftest import CAMERA_CODE as CODE
from .factories import (
    ClaimedDeviceFactory,
    MembershipFactory,
    OrganizationFactory,
    ReleaseRequestFactory,
    SpaceFactory,
    api_token,
)
from .test_claim_wizard import Wizard

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_throttle")]

MESSAGE = "Bought it from a reseller last week; the box had its claim code."


@pytest.fixture
def held(space, unit, owner, admin_member):
    """The holder's unit (a camera claimed by serial number and claim code), with names that would
    give the holder away."""
    space.name = "Holder HQ lobby"
    space.save()
    organization = space.organization
    organization.name = "Holder Corp"
    organization.save()
    return ClaimedDeviceFactory(space=space, identity=unit, name="Holder reception camera", claimed_by=owner)


@pytest.fixture
def requester_space(device_model):
    organization = OrganizationFactory(name="Requester Inc", vendors=[device_model.vendor])
    return SpaceFactory(organization=organization, name="Requester warehouse")


@pytest.fixture
def asker(requester_space):
    return MembershipFactory(
        organization=requester_space.organization,
        role=Role.ADMIN,
        user__email="asker@requester.test",
        user__full_name="Ada Asker",
    ).user


@pytest.fixture
def asker_client(client, asker):
    client.force_login(asker)
    return client


HOLDER_GIVEAWAYS = ("Holder Corp", "Holder reception camera", "Holder HQ lobby")
REQUESTER_GIVEAWAYS = ("Requester Inc", "Requester warehouse", "asker@requester.test", "Ada Asker")


def _none_of(giveaways, text):
    return [giveaway for giveaway in giveaways if giveaway in text]


def _refused_in_wizard(client, requester_space, unit, code=CODE):
    return Wizard(client, requester_space).claim(unit.device_model, serial_number=unit.identifier_1, claim_code=code)


def _ask(client, requester_space, message=MESSAGE):
    return client.post(reverse("release-request-ask", args=[requester_space.organization.code]), {"message": message})


@pytest.fixture
def asked(asker_client, requester_space, unit, held, django_capture_on_commit_callbacks):
    """The requester's admin asks in the wizard, after the refusal; the holder is e-mailed."""
    _refused_in_wizard(asker_client, requester_space, unit)
    with django_capture_on_commit_callbacks(execute=True):
        response = _ask(asker_client, requester_space)
    assert response.status_code == 302, response.content
    return ReleaseRequest.objects.get()


def _mails_to(*emails):
    return [message for message in mail.outbox if set(message.to) & set(emails)]


# What the holder learns of the requester: the message and the date, nothing else.


def test_the_holders_device_page_shows_the_message_and_the_date_but_not_who_asked(client, owner, held, asked):
    client.force_login(owner)
    page = client.get(reverse("device-detail", args=[held.code])).text
    assert MESSAGE in page
    assert f"Asked on {timezone.localdate():%Y-%m-%d}" in page
    assert _none_of(REQUESTER_GIVEAWAYS, page) == []


def test_the_holders_owners_and_admins_are_emailed_the_message_and_not_who_asked(owner, admin_member, held, asked):
    to_holder = _mails_to(owner.email, admin_member.email)
    assert sorted(message.to[0] for message in to_holder) == sorted([owner.email, admin_member.email])
    for message in to_holder:
        assert MESSAGE in message.body
        assert reverse("device-detail", args=[held.code]) in message.body
        assert _none_of(REQUESTER_GIVEAWAYS, message.subject + message.body) == []


def test_operators_and_viewers_of_the_holder_neither_see_nor_hear_of_requests(client, operator, viewer, held, asked):
    assert _mails_to(operator.email, viewer.email) == []
    for member in (operator, viewer):
        client.force_login(member)
        assert MESSAGE not in client.get(reverse("device-detail", args=[held.code])).text


def test_the_holders_audit_log_of_a_decline_names_nobody_who_asked(owner, held, asked):
    rules.decline_request(asked, actor=owner)
    entry = AuditEntry.objects.get(organization=held.organization, action=AuditEntry.Action.RELEASE_REQUEST_DECLINED)
    assert entry.target == "Holder reception camera"
    assert _none_of(REQUESTER_GIVEAWAYS, f"{entry.actor_email} {entry.target} {entry.details}") == []


def test_a_message_is_shown_to_the_holder_as_text_never_markup(client, owner, held):
    ReleaseRequestFactory(device=held, message='<script>alert("x")</script><b>mine</b>')
    client.force_login(owner)
    page = client.get(reverse("device-detail", args=[held.code])).text
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert" in page


# What the requester learns of the holder: the unit as they typed it and the answer, nothing else.


def test_the_wizards_refusal_offers_to_ask_the_owner_and_names_nobody(asker_client, requester_space, unit, held):
    refused = _refused_in_wizard(asker_client, requester_space, unit)
    assert "already claimed by another organization" in refused.text
    assert "Ask the owner to release it" in refused.text
    assert _none_of(HOLDER_GIVEAWAYS, refused.text) == []
    ask = asker_client.get(reverse("release-request-ask", args=[requester_space.organization.code])).text
    assert unit.identifier_1 in ask
    assert "not your organization, your name or your e-mail address" in ask
    assert _none_of(HOLDER_GIVEAWAYS, ask) == []


def test_the_label_refusal_of_a_held_unit_offers_to_ask_and_does_not_link_the_holders_space(
    asker_client, requester_space, unit, held
):
    from .test_claim_label import _link

    asker_client.get(_link(unit))
    refused = asker_client.post(reverse("claim-label-space"), {"space": str(requester_space.code)})
    assert refused.status_code == 400
    assert "Ask the owner to release it" in refused.text
    assert _none_of(HOLDER_GIVEAWAYS, refused.text) == []
    assert reverse("space-dashboard", args=[held.space.code]) not in refused.text
    assert _ask(asker_client, requester_space).status_code == 302
    assert ReleaseRequest.objects.get().claim_code_hash == unit.claim_code_hash


def test_the_requesters_audit_line_names_the_unit_as_typed_and_not_the_holder(asked, requester_space, unit):
    entry = AuditEntry.objects.get(action=AuditEntry.Action.RELEASE_REQUESTED)
    assert entry.organization == requester_space.organization
    assert unit.identifier_1 in entry.target
    assert _none_of(HOLDER_GIVEAWAYS, f"{entry.target} {entry.details}") == []


def test_the_requester_hears_a_decline_by_email_and_on_their_list_without_the_holders_name(
    asker_client, asker, owner, requester_space, asked, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        rules.decline_request(asked, actor=owner)
    [told] = _mails_to(asker.email)
    assert "declined" in told.body
    assert _none_of(HOLDER_GIVEAWAYS + (owner.email,), told.subject + told.body) == []
    listed = asker_client.get(reverse("release-requests", args=[requester_space.organization.code])).text
    assert "Declined" in listed
    assert _none_of(HOLDER_GIVEAWAYS + (owner.email,), listed) == []


def test_after_a_release_and_a_claim_the_requester_sees_nothing_of_the_holder_on_pages_or_the_api(
    asker_client, asker, owner, requester_space, held, asked, django_capture_on_commit_callbacks
):
    DeviceEvent.objects.create(device=held, kind=DeviceEvent.Kind.RENAMED, actor=owner, details={"to": held.name})
    with django_capture_on_commit_callbacks(execute=True):
        rules.release_for_request(asked, actor=owner)
    [told] = _mails_to(asker.email)
    assert _none_of(HOLDER_GIVEAWAYS + (owner.email,), told.subject + told.body) == []
    device = claim_device(
        space=requester_space,
        device_model=held.device_model,
        identifiers={"serial_number": held.identity.identifier_1},
        claim_code=CODE,
        name="Dock camera",
        actor=asker,
    )
    page = asker_client.get(reverse("device-detail", args=[device.code])).text
    _, token = api_token(requester_space.organization)
    api = asker_client.get(
        reverse("org-api:get_device", kwargs={"device_id": device.code}), HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert api.status_code == 200
    assert _none_of(HOLDER_GIVEAWAYS + (owner.email,), page + api.text) == []


def test_the_holder_learns_nothing_of_the_requester_from_a_release(owner, held, asked):
    rules.release_for_request(asked, actor=owner)
    lines = AuditEntry.objects.filter(organization=held.organization)
    assert [line.action for line in lines] == [AuditEntry.Action.DEVICE_RELEASED]
    assert _none_of(REQUESTER_GIVEAWAYS, str(list(lines.values()))) == []


# Binding a request to the proof.


def test_nobody_can_ask_about_a_unit_they_have_not_proven(asker_client, requester_space, held):
    page = asker_client.get(reverse("release-request-ask", args=[requester_space.organization.code]))
    assert "There is no device to ask about" in page.text
    forged = asker_client.post(
        reverse("release-request-ask", args=[requester_space.organization.code]),
        {"message": MESSAGE, "device": held.pk, "identity": held.identity.pk},
    )
    assert forged.status_code == 400
    assert not ReleaseRequest.objects.exists()


def test_a_wrong_claim_code_gives_nothing_to_ask_about(asker_client, requester_space, unit, held):
    refused = _refused_in_wizard(asker_client, requester_space, unit, code=generate_claim_code())
    assert "not approved" in refused.text
    assert "Ask the owner to release it" not in refused.text
    assert _ask(asker_client, requester_space).status_code == 400
    assert not ReleaseRequest.objects.exists()


def test_a_proof_kept_for_one_organization_cannot_ask_for_another(
    asker_client, asker, requester_space, unit, held, device_model
):
    other = OrganizationFactory(vendors=[device_model.vendor])
    MembershipFactory(organization=other, user=asker, role=Role.OWNER)
    _refused_in_wizard(asker_client, requester_space, unit)
    assert asker_client.post(reverse("release-request-ask", args=[other.code]), {"message": MESSAGE}).status_code == 400
    assert not ReleaseRequest.objects.exists()


def test_operators_of_the_requester_may_not_ask(client, requester_space):
    operator = MembershipFactory(organization=requester_space.organization, role=Role.OPERATOR).user
    client.force_login(operator)
    assert _ask(client, requester_space).status_code == 403


def test_the_message_is_limited_in_length_and_the_form_keeps_what_was_typed(asker_client, requester_space, unit, held):
    _refused_in_wizard(asker_client, requester_space, unit)
    too_long = "x" * 501
    response = _ask(asker_client, requester_space, message=too_long)
    assert response.status_code == 400
    assert too_long in response.text
    assert not ReleaseRequest.objects.exists()


# One open request per unit and organization; expiry after 14 days.


def test_one_open_request_per_unit_per_requesting_organization(asker_client, requester_space, unit, held, asked):
    _refused_in_wizard(asker_client, requester_space, unit)
    again = _ask(asker_client, requester_space, message="Please?")
    assert again.status_code == 400
    assert "already asked the owner" in again.text
    assert ReleaseRequest.objects.count() == 1


def test_another_organization_may_ask_for_the_same_unit(held, asked, device_model):
    other = OrganizationFactory(vendors=[device_model.vendor])
    user = MembershipFactory(organization=other).user
    rules.request_release(device=held, organization=other, actor=user, message="Ours too?")
    assert ReleaseRequest.objects.open().filter(device=held).count() == 2


def test_the_holder_cannot_ask_itself(held, owner):
    with pytest.raises(rules.ReleaseRequestError):
        rules.request_release(device=held, organization=held.organization, actor=owner, message="")


def test_a_request_expires_after_14_days_and_may_then_be_asked_again(
    asker_client, asker, owner, requester_space, unit, held, asked, django_capture_on_commit_callbacks
):
    later = asked.created_at + timedelta(days=14, seconds=1)
    assert ReleaseRequest.objects.open(now=later - timedelta(seconds=2)).exists()
    assert not ReleaseRequest.objects.open(now=later).exists()
    assert asked.current_status(later) == ReleaseRequest.Status.EXPIRED
    with django_capture_on_commit_callbacks(execute=True):
        assert rules.expire_requests(now=later) == 1
    assert rules.expire_requests(now=later) == 0
    asked.refresh_from_db()
    assert asked.status == ReleaseRequest.Status.EXPIRED
    assert "expired" in _mails_to(asker.email)[0].body
    with pytest.raises(rules.ReleaseRequestError):
        rules.decline_request(asked, actor=owner)
    again = rules.request_release(device=held, organization=requester_space.organization, actor=asker, message="")
    assert again.status == ReleaseRequest.Status.OPEN


def test_an_expired_request_not_yet_swept_leaves_the_device_page_and_lets_the_requester_ask_again(
    client, owner, asker, requester_space, held, asked
):
    ReleaseRequest.objects.filter(pk=asked.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    client.force_login(owner)
    assert MESSAGE not in client.get(reverse("device-detail", args=[held.code])).text
    rules.request_release(device=held, organization=requester_space.organization, actor=asker, message="Again")
    assert sorted(ReleaseRequest.objects.values_list("status", flat=True)) == ["expired", "open"]


def test_requests_are_rate_limited_per_user(held, asker, requester_space, device_model, monkeypatch):
    monkeypatch.setattr(rules, "REQUESTS_PER_USER", RateLimit("release_requests:user", limit=2, window=60))
    units = [ClaimedDeviceFactory(identity__device_model=device_model, space=held.space) for _ in range(3)]
    for device in units[:2]:
        rules.request_release(device=device, organization=requester_space.organization, actor=asker, message="")
    with pytest.raises(rules.ReleaseRequestError, match="many release requests"):
        rules.request_release(device=units[2], organization=requester_space.organization, actor=asker, message="")


# The answers.


def test_the_holder_declines_on_the_device_page(client, owner, held, asked):
    client.force_login(owner)
    response = client.post(reverse("release-request-decline", args=[asked.code]), follow=True)
    assert "The request is declined" in response.text
    asked.refresh_from_db()
    assert asked.status == ReleaseRequest.Status.DECLINED
    assert Device.objects.get(pk=held.pk).organization == held.organization
    assert client.post(reverse("release-request-decline", args=[asked.code])).status_code == 302
    assert AuditEntry.objects.filter(action=AuditEntry.Action.RELEASE_REQUEST_DECLINED).count() == 1


def test_the_holder_releases_through_the_release_confirmation(client, owner, held, asked):
    client.force_login(owner)
    url = reverse("release-request-release", args=[asked.code])
    confirm = client.get(url)
    assert "only the organization that asked may claim it" in confirm.text
    assert client.post(url, {"confirm_name": "wrong"}).status_code == 400
    assert client.post(url, {"confirm_name": held.name}).status_code == 302
    held.refresh_from_db()
    assert held.status != Device.Status.CLAIMED
    asked.refresh_from_db()
    assert asked.status == ReleaseRequest.Status.RELEASED
    assert asked.reserved_until > timezone.now() + timedelta(hours=23)
    assert client.get(url).status_code == 404  # nothing more to answer: the device is no longer theirs


def test_the_requester_claims_the_released_unit_at_once_without_typing_its_code(
    asker_client, owner, requester_space, held, asked
):
    rules.release_for_request(asked, actor=owner)
    listed = asker_client.get(reverse("release-requests", args=[requester_space.organization.code])).text
    assert "Claim it now" in listed
    choice = asker_client.get(reverse("release-request-claim", args=[asked.code]), follow=True)
    assert choice.redirect_chain[-1][0] == reverse("claim-label-space")
    assert CODE not in choice.text
    name_step = asker_client.post(reverse("claim-label-space"), {"space": str(requester_space.code)}, follow=True)
    assert name_step.context["wizard"]["steps"].current == "name"
    wizard_url = reverse("claim-device", args=[requester_space.code])
    claimed = asker_client.post(
        wizard_url, {f"claim_{requester_space.code.hex}-current_step": "name", "name-name": "Dock camera"}
    )
    assert claimed.status_code == 302
    device = Device.objects.get(pk=held.pk)
    assert (device.organization, device.name) == (requester_space.organization, "Dock camera")


def test_a_third_organization_cannot_claim_within_the_window_and_can_after(owner, held, asked, device_model):
    """Decided: the requester wins the race. The holder let the unit go for them; anyone else who
    holds its code (the holder included) waits for the window to end."""
    rules.release_for_request(asked, actor=owner)
    third = SpaceFactory(organization=OrganizationFactory(vendors=[device_model.vendor]))
    intruder = MembershipFactory(organization=third.organization).user
    values = {"serial_number": held.identity.identifier_1}
    for space, actor in ((third, intruder), (held.space, owner)):
        with pytest.raises(ReservedForRequester):
            claim_device(
                space=space, device_model=held.device_model, identifiers=values, claim_code=CODE, name="X", actor=actor
            )
    ReleaseRequest.objects.filter(pk=asked.pk).update(reserved_until=timezone.now() - timedelta(seconds=1))
    device = claim_device(
        space=third, device_model=held.device_model, identifiers=values, claim_code=CODE, name="X", actor=intruder
    )
    assert device.organization == third.organization


def test_a_release_by_other_means_closes_the_request_tells_the_requester_and_reserves_nothing(
    asker, owner, held, asked, device_model, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        release_device(held, actor=owner)
    asked.refresh_from_db()
    assert (asked.status, asked.reserved_until) == (ReleaseRequest.Status.CLOSED, None)
    assert "released otherwise" in _mails_to(asker.email)[0].body
    with pytest.raises(DeviceActionError):
        rules.release_for_request(asked, actor=owner)
    third = SpaceFactory(organization=OrganizationFactory(vendors=[device_model.vendor]))
    claim_device(
        space=third,
        device_model=held.device_model,
        identifiers={"serial_number": held.identity.identifier_1},
        claim_code=CODE,
        name="Theirs",
        actor=MembershipFactory(organization=third.organization).user,
    )


def test_a_release_deletes_the_messages_written_to_the_holder_and_closes_the_others(owner, held, asked, device_model):
    other = ReleaseRequestFactory(device=held, message="Ours?")
    declined = ReleaseRequestFactory(device=held, message="Declined one")
    rules.decline_request(declined, actor=owner)
    rules.release_for_request(asked, actor=owner)
    statuses = dict(ReleaseRequest.objects.values_list("pk", "status"))
    assert statuses == {asked.pk: "released", other.pk: "closed", declined.pk: "declined"}
    assert set(ReleaseRequest.objects.values_list("message", flat=True)) == {""}


def test_a_requester_who_claimed_and_released_again_leaves_the_unit_to_anyone(
    owner, asker, requester_space, held, asked, device_model
):
    rules.release_for_request(asked, actor=owner)
    values = {"serial_number": held.identity.identifier_1}
    mine = claim_device(
        space=requester_space,
        device_model=held.device_model,
        identifiers=values,
        claim_code=CODE,
        name="A",
        actor=asker,
    )
    release_device(mine, actor=asker)
    assert not ReleaseRequest.objects.reserving(held).exists()


def test_the_emailed_claim_link_leads_to_the_claim_flow(
    asker_client, asker, owner, asked, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        rules.release_for_request(asked, actor=owner)
    body = _mails_to(asker.email)[0].body
    link = re.search(r"https?://\S+/release-requests/\S+/claim/", body).group(0)
    assert asker_client.get(urlsplit(link).path).status_code == 302


def test_each_email_goes_once_however_often_its_task_runs(owner, asker, asked):
    from releaserequests import notices

    assert notices.tell_holder(asked.pk) is False  # sent when asked
    rules.decline_request(asked, actor=owner)
    assert notices.tell_requester(asked.pk) is True
    assert notices.tell_requester(asked.pk) is False


def test_the_sweep_sends_the_emails_whose_task_the_broker_lost(owner, asker, held, requester_space):
    from releaserequests import tasks

    lost = ReleaseRequestFactory(
        device=held,
        requesting_organization=requester_space.organization,
        requested_by=asker,
        created_at=timezone.now() - timedelta(minutes=3),
    )
    tasks.sweep_requests()
    assert len(_mails_to(owner.email)) == 1
    ReleaseRequest.objects.filter(pk=lost.pk).update(
        status=ReleaseRequest.Status.DECLINED, answered_at=timezone.now() - timedelta(minutes=3)
    )
    tasks.sweep_requests()
    tasks.sweep_requests()
    assert len(_mails_to(owner.email)) == 1
    assert len(_mails_to(asker.email)) == 1


def test_a_bulk_claim_refuses_a_unit_reserved_for_the_requester_with_the_claims_wording(
    owner, held, asked, device_model
):
    from devices.bulk_claims import ClaimRow, claim_devices

    rules.release_for_request(asked, actor=owner)
    third = SpaceFactory(organization=OrganizationFactory(vendors=[device_model.vendor]))
    intruder = MembershipFactory(organization=third.organization).user
    row = ClaimRow(1, third, held.device_model, {"serial_number": held.identity.identifier_1}, "X", claim_code=CODE)
    report = claim_devices([row], organization=third.organization, actor=intruder)
    (result,) = report.rows
    assert not report.devices
    assert result.result == "reserved"
    assert "alone may claim it" in result.message
