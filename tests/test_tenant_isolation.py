"""Tenant isolation, walked over every URL pattern of the URLconf.

Each pattern is looked up in tests/url_registry.py: a pattern nobody classified fails here with
its name. For an organization's page, a signed-in owner of another organization gets 404 on GET
and on the POST that succeeds for the owner, and nothing in the database changes; vendor staff
get nothing of another vendor's (or a customer's) objects in the admin, and on their own pages
see organizations, not people.
"""

import html
import json
import re
import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group
from django.test import RequestFactory
from django.urls import URLResolver, get_resolver, reverse
from django.utils import timezone

from accounts.audit import record_audit
from accounts.members import invitation_token
from accounts.models import Invitation, Membership, Role
from devices.actions import rename_device
from devices.models import ActivationOperation
from releaserequests.models import ReleaseRequest
from vendors.models import ClaimCodeIssue, ClaimingMethod, ImportJob, VendorAuditEntry
from webhooks.endpoints import send_ping

from . import url_registry
from .conftest import database_state
from .factories import (
    ActivatedDeviceFactory,
    ApprovedIdentityFactory,
    ClaimedDeviceFactory,
    DeviceFactory,
    MembershipFactory,
    OrganizationFactory,
    ProductionBatchFactory,
    ReleaseRequestFactory,
    SpaceFactory,
    VendorFactory,
    VendorStaffFactory,
    api_token,
    webhook_endpoint,
)

pytestmark = pytest.mark.django_db

ADMIN_MODEL_ROUTE = re.compile(r"^admin/(?P<app>\w+)/(?P<model>\w+)/")


def _walk(patterns, prefix="", namespace=None):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern), pattern.namespace or namespace)
        else:
            name = f"{namespace}:{pattern.name}" if namespace and pattern.name else pattern.name
            yield name, prefix + str(pattern.pattern)


ALL_PATTERNS = list(_walk(get_resolver().url_patterns))
PORTAL_PATTERNS = [(name, route) for name, route in ALL_PATTERNS if not route.startswith("admin/")]
ADMIN_PATTERNS = [(name, route) for name, route in ALL_PATTERNS if route.startswith("admin/")]


def _admin_model(route):
    match = ADMIN_MODEL_ROUTE.match(route)
    if match is None:
        return None
    try:
        return apps.get_model(match["app"], match["model"])
    except LookupError:
        return None


def _unclassified():
    missing = [
        f"{name or '(unnamed)'} ({route})" for name, route in PORTAL_PATTERNS if name not in url_registry.PORTAL_PAGES
    ]
    for name, route in ADMIN_PATTERNS:
        model = _admin_model(route)
        if model is not None:
            if model._meta.label_lower not in url_registry.ADMIN_MODELS:
                missing.append(f"admin model {model._meta.label_lower} ({route})")
        elif (name or route) not in url_registry.ADMIN_SITE_PAGES:
            missing.append(f"{name or '(unnamed)'} ({route})")
    return missing


def test_every_url_pattern_is_classified_in_the_registry():
    missing = _unclassified()
    assert not missing, (
        "URL patterns nobody said who may see; add one line each to tests/url_registry.py: " + ", ".join(missing)
    )


def test_the_registry_names_no_pattern_that_is_gone():
    names = {name for name, _ in PORTAL_PATTERNS}
    assert set(url_registry.PORTAL_PAGES) - names == set()


@pytest.fixture
def world(organization, owner, viewer, space, device_model):
    """A victim organization with something behind every kind of URL argument (and a second owner,
    so that one may leave), vendor staff of another vendor, and a device of theirs that the
    organization's owner claimed."""
    device = ActivatedDeviceFactory(space=space, identity__device_model=device_model)
    rename_device(device, name="Lobby screen", actor=owner)
    invitation = Invitation.objects.create(organization=organization, email="invited@example.test", role=Role.ADMIN)
    MembershipFactory(organization=organization, role=Role.OWNER)
    staff_vendor = VendorFactory()
    webhook, _ = webhook_endpoint(organization, "https://hooks.example.com/portal")
    ping = send_ping(webhook, actor=owner)
    return SimpleNamespace(
        webhook=webhook,
        webhook_delivery=ping.deliveries.get(),
        staff_vendor_device=ClaimedDeviceFactory(
            space=space, identity__device_model__vendor=staff_vendor, claimed_by=owner, name="Their hub"
        ),
        organization=organization,
        owner=owner,
        space=space,
        second_space=SpaceFactory(organization=organization, name="Second"),
        device=device,
        unclaimed_unit=ApprovedIdentityFactory(device_model=device_model),
        device_event=device.events.get(),
        received_request=ReleaseRequestFactory(device=device),
        made_request=ReleaseRequestFactory(
            device=DeviceFactory(identity__device_model=device_model),
            holding_organization=OrganizationFactory(),
            requesting_organization=organization,
            status=ReleaseRequest.Status.RELEASED,
            reserved_until=timezone.now() + timedelta(hours=1),
        ),
        viewer_membership=Membership.objects.get(user=viewer),
        invitation=invitation,
        invitation_token=invitation_token(invitation),
        api_token=api_token(organization, Role.VIEWER, name="Their script", actor=owner)[0],
        audit_entry=record_audit(organization_id=organization.pk, actor=owner, action="space_created", target="X"),
        group=Group.objects.create(name="Some vendor's staff"),
        other_vendor=device_model.vendor,
        other_vendor_staff=VendorStaffFactory(vendor=device_model.vendor),
        staff_vendor=staff_vendor,
        vendor_staff=VendorStaffFactory(vendor=staff_vendor).user,
        production_batch=ProductionBatchFactory(device_model__vendor=device_model.vendor),
        # Shipped claiming methods are every vendor's to use; a vendor's own method is not.
        other_vendor_method=ClaimingMethod.objects.create(
            name="Their IMEI method", slug="their-imei", vendor=device_model.vendor
        ),
        import_job=ImportJob.objects.create(device_model=device_model, source_name="their-list.csv"),
        claim_code_issue=ClaimCodeIssue.objects.create(device_model=device_model, reason="reissue", units=3),
        vendor_audit_entry=VendorAuditEntry.objects.create(
            vendor=device_model.vendor,
            device_model=device_model,
            identifiers=str(device.identity),
            action=VendorAuditEntry.Action.values[0],
        ),
        activation_operation=ActivationOperation.objects.create(
            vendor_slug=device_model.vendor.slug,
            model_slug=device_model.slug,
            identifiers={"serial_number": device.identity.identifier_1},
            device_public_key="A" * 43,
        ),
    )


def _post_for(name, world):
    """The POST the owner's succeeds with on page `name`, or fields that would succeed on most of
    the victim's forms."""
    page = url_registry.PORTAL_PAGES[name]
    return page.post(world) if page.post else _hostile_post(world)


def _hostile_post(world):
    return {
        "name": "Hijacked",
        "email": "attacker@example.test",
        "role": Role.OWNER,
        "move_devices_to": world.second_space.pk,
        "full_name": "Attacker",
        "password1": "attacker-pass-phrase",
        "password2": "attacker-pass-phrase",
    }


def _portal_page(name):
    page = url_registry.PORTAL_PAGES.get(name)
    if page is None:
        pytest.fail(f"URL pattern {name!r} is not classified in tests/url_registry.py")
    return page


def _names_of(kind, **where):
    return [
        name
        for name, _ in PORTAL_PATTERNS
        if name in url_registry.PORTAL_PAGES
        and url_registry.PORTAL_PAGES[name].kind == kind
        and all(getattr(url_registry.PORTAL_PAGES[name], key) == value for key, value in where.items())
    ]


@pytest.mark.parametrize("name", _names_of(url_registry.ORGANIZATION))
def test_an_outsider_gets_404_and_changes_nothing(client, world, outsider, name):
    page = url_registry.PORTAL_PAGES[name]
    url = reverse(name, kwargs=page.kwargs(world))
    client.force_login(outsider)
    before = database_state()
    assert _not_found_or_method_never_allowed(client.get(url), "GET")
    assert _not_found_or_method_never_allowed(client.post(url, _post_for(name, world)), "POST")
    assert database_state() == before


def _not_found_or_method_never_allowed(response, method):
    """404, or 405 from a page that takes no `method` from anyone (answered before any lookup, so
    it tells nothing about the object)."""
    return response.status_code == 404 or (response.status_code == 405 and method not in response["Allow"])


@pytest.mark.parametrize("name", _names_of(url_registry.ORGANIZATION, managers_only=True))
def test_a_viewer_gets_403_on_managers_pages_and_changes_nothing(client, world, viewer, name):
    url = reverse(name, kwargs=url_registry.PORTAL_PAGES[name].kwargs(world))
    client.force_login(viewer)
    before = database_state()
    assert client.get(url).status_code in (403, 405)
    assert client.post(url, _post_for(name, world)).status_code == 403
    assert database_state() == before


@pytest.mark.parametrize(("name", "route"), PORTAL_PATTERNS, ids=[name or route for name, route in PORTAL_PATTERNS])
def test_a_member_reaches_the_same_url(client, world, name, route):
    """The sample arguments point at real objects: otherwise the 404s above would prove nothing. A
    page the owner cannot GET (POST only) is proven by the owner's POST, below."""
    page = _portal_page(name)
    if page.kind == url_registry.DEVICE_API:
        assert client.get(reverse(name, kwargs=page.kwargs(world))).status_code in (401, 405)
        return
    if page.kind == url_registry.ORGANIZATION_API:
        assert _api_call(client, name, world, page).status_code == 401
        return
    if page.kind == url_registry.PUBLIC:
        assert client.get(reverse(name, kwargs=page.kwargs(world))).status_code < 500
        return
    url = reverse(name, kwargs=page.kwargs(world))
    anonymous = client.get(url)
    assert anonymous.status_code == 405 or anonymous["Location"].startswith(reverse("login")), (
        "anonymous visitors are sent to sign in"
    )
    client.force_login(world.owner)
    response = client.get(url)
    if response.status_code == 405:
        assert page.kind != url_registry.ORGANIZATION or page.post, (
            f"{name} takes no GET: say in tests/url_registry.py the POST the owner's succeeds with"
        )
    else:
        assert response.status_code in (200, 302)


@pytest.mark.parametrize(
    "name", [name for name in _names_of(url_registry.ORGANIZATION) if url_registry.PORTAL_PAGES[name].post]
)
def test_the_owners_post_succeeds_on_the_same_url(client, world, name):
    """The POST the outsider and the viewer are refused does something for the owner: the sample
    URL names a real object and the data is what its form takes."""
    url = reverse(name, kwargs=url_registry.PORTAL_PAGES[name].kwargs(world))
    client.force_login(world.owner)
    before = database_state()
    response = client.post(url, _post_for(name, world))
    assert response.status_code in (200, 302), response.status_code
    assert database_state() != before, f"the owner's POST to {url} changed nothing"


def test_a_member_id_of_another_organization_is_404_under_ones_own_organization(client, world, outsider):
    own_organization = outsider.memberships.get().organization
    url = reverse("member-role", args=[own_organization.code, world.viewer_membership.pk])
    client.force_login(outsider)
    before = database_state()
    assert client.post(url, {"role": Role.OWNER}).status_code == 404
    assert (
        client.post(reverse("member-remove", args=[own_organization.code, world.viewer_membership.pk])).status_code
        == 404
    )
    assert database_state() == before


# The admin, scoped per vendor: vendor staff get 403 where they hold no permission, and another
# vendor's object answers 404 or a redirect to the index ("does not exist"). All three are
# refusals; what a page they may open shows is compared with the object field by field, and the
# database must not change in any case.
ADMIN_MODEL_PATTERNS = [(name, route) for name, route in ADMIN_PATTERNS if _admin_model(route) is not None]
ADMIN_OBJECT_ARGUMENT = re.compile(r"<(?:path:)?(?:object_id|id)>")


def _admin_url(route, obj):
    return "/" + ADMIN_OBJECT_ARGUMENT.sub(str(obj.pk), route)


def _refused(response, url):
    if response.status_code in (403, 404):
        return True
    # The admin's "does not exist" answer, and its bare object URL forwarding to the change URL
    # (which is walked on its own).
    return response.status_code == 302 and response["Location"] in (reverse("admin:index"), url + "change/")


def _giveaways(obj):
    """What would give `obj` away on a page: its name and each of its own text, UUID and JSON
    values. Numbers, flags, choices and dates are left out: they tell no one object apart."""
    values = {str(obj)}
    for field in obj._meta.concrete_fields:
        if field.is_relation or field.choices:
            continue
        value = field.value_from_object(obj)
        if isinstance(value, uuid.UUID):
            values.add(str(value))
        elif isinstance(value, str):
            values.add(value)
        elif isinstance(value, dict):
            values.update(item for item in value.values() if isinstance(item, str))
    return {value for value in values if len(value) >= 3}


def _shown(obj, response):
    """The giveaways of `obj` that the page shows, each as a whole word, unescaped."""
    body = b"".join(response.streaming_content) if response.streaming else response.content
    text = html.unescape(body.decode())
    return sorted(value for value in _giveaways(obj) if re.search(rf"(?<!\w){re.escape(value)}(?!\w)", text))


@pytest.mark.parametrize(
    ("name", "route"), ADMIN_MODEL_PATTERNS, ids=[name or route for name, route in ADMIN_MODEL_PATTERNS]
)
def test_vendor_staff_get_nothing_of_another_vendors_or_a_customers_admin_objects(client, world, name, route):
    model = _admin_model(route)
    obj = url_registry.ADMIN_MODELS[model._meta.label_lower](world)
    url = _admin_url(route, obj)
    client.force_login(world.vendor_staff)
    before = database_state()
    response = client.get(url)
    never_gets = response.status_code == 405 and "GET" not in response["Allow"]  # POST-only, before any lookup
    assert never_gets or _refused(response, url) or response.status_code == 200, response.status_code
    assert not _shown(obj, response), (
        f"{url} showed {_shown(obj, response)} of {obj!r} to staff of {world.staff_vendor}"
    )
    posted = client.post(url, {"name": "Hijacked", "post": "yes"})
    if "object_id" in route:
        assert _refused(posted, url), f"{url} accepted a POST"
    else:
        # A list or add page the staff may use for their own vendor: the POST may answer (no action
        # chosen, or a form error) but must not show the object nor change anything (checked below).
        assert not _shown(obj, posted), f"{url} showed {_shown(obj, posted)} of {obj!r} after a POST"
    assert database_state() == before


def test_the_giveaways_are_found_where_the_object_is_shown(admin_client, world):
    """The field-by-field check above can fail: the superuser's pages show each sample's values."""
    for label, sample in url_registry.ADMIN_MODELS.items():
        obj = sample(world)
        app_label, model_name = label.split(".")
        changelist = admin_client.get(reverse(f"admin:{app_label}_{model_name}_changelist"))
        change = admin_client.get(reverse(f"admin:{app_label}_{model_name}_change", args=[obj.pk]))
        assert _shown(obj, changelist) or _shown(obj, change), f"nothing of {obj!r} found on its own pages"


def _staff_request(world):
    request = RequestFactory().get("/admin/")
    request.user = world.vendor_staff
    return request


def _own_admin_pages(world):
    """Every admin page vendor staff may open about their own vendor: each visible model's list and
    add page, and every page of each of their objects."""
    request = _staff_request(world)
    for _, route in ADMIN_MODEL_PATTERNS:
        model_admin = admin.site._registry[_admin_model(route)]
        if not model_admin.has_view_permission(request):
            continue
        if ADMIN_OBJECT_ARGUMENT.search(route):
            for obj in model_admin.get_queryset(request):
                yield _admin_url(route, obj)
        else:
            yield "/" + route


def test_vendor_staff_see_organizations_not_people_on_their_own_admin_pages(client, world):
    """A customer's person (here the owner who claimed one of the vendor's devices) appears by no
    field on any page the staff open about their own vendor's objects."""
    client.force_login(world.vendor_staff)
    pages = list(_own_admin_pages(world))
    assert any(str(world.staff_vendor_device.pk) in url for url in pages)
    for url in pages:
        response = client.get(url)
        if response.status_code == 200:
            assert not _shown(world.owner, response), f"{url} showed {_shown(world.owner, response)} of a customer"


@pytest.mark.parametrize("label", sorted(url_registry.ADMIN_MODELS))
def test_the_admin_samples_are_real_objects_a_superuser_can_open(admin_client, world, label):
    obj = url_registry.ADMIN_MODELS[label](world)
    app_label, model_name = label.split(".")
    assert admin_client.get(reverse(f"admin:{app_label}_{model_name}_change", args=[obj.pk])).status_code == 200


def test_every_admin_model_is_in_the_registry():
    registered = {model._meta.label_lower for model in admin.site._registry}
    assert registered == set(url_registry.ADMIN_MODELS), "tests/url_registry.py ADMIN_MODELS is out of date"


ADMIN_SIGN_IN_PATTERNS = [
    (name, route)
    for name, route in ADMIN_PATTERNS
    if _admin_model(route) is not None or url_registry.ADMIN_SITE_PAGES.get(name or route) is False
]


@pytest.mark.parametrize(
    ("name", "route"), ADMIN_SIGN_IN_PATTERNS, ids=[name or route for name, route in ADMIN_SIGN_IN_PATTERNS]
)
def test_customers_are_sent_to_the_admin_sign_in(client, world, name, route):
    if name == "admin:app_list":
        url = reverse(name, args=["accounts"])
    else:
        url = _admin_url(route, world.organization).replace("(?P<url>.*)$", "anything/")
    client.force_login(world.owner)
    before = database_state()
    response = client.get(url)
    assert response.status_code == 302
    # Sign-out sends to the index, which itself sends customers to sign in (walked as admin:index).
    assert response["Location"].startswith(reverse("admin:login")) or (
        name == "admin:logout" and response["Location"] == reverse("admin:index")
    )
    assert database_state() == before


@pytest.mark.parametrize("name", _names_of(url_registry.DEVICE_API))
def test_a_users_session_never_opens_the_device_api(client, world, name):
    """Even the owner of the device's organization, signed in, is not a device: 401, nothing changes."""
    url = reverse(name, kwargs=url_registry.PORTAL_PAGES[name].kwargs(world))
    client.force_login(world.owner)
    before = database_state()
    assert client.get(url).status_code in (401, 405)
    assert client.post(url, {"metrics": {}}, content_type="application/json").status_code in (401, 405)
    assert database_state() == before


def _api_call(client, name, world, page, token=None):
    url = reverse(name, kwargs=page.kwargs(world))
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    body = page.post(world) if page.post else None
    call = getattr(client, page.method)
    if body is None:
        return call(url, **headers)
    return call(url, data=json.dumps(body), content_type="application/json", **headers)


@pytest.mark.parametrize("name", _names_of(url_registry.ORGANIZATION_API))
def test_the_organization_s_own_token_succeeds_where_another_s_gets_404_and_a_session_401(
    client, world, outsider, name
):
    page = url_registry.PORTAL_PAGES[name]
    other_token = api_token(outsider.memberships.get().organization, Role.ADMIN)[1]
    own_token = api_token(world.organization, Role.ADMIN)[1]
    client.force_login(world.owner)
    before = database_state()
    assert _api_call(client, name, world, page).status_code == 401, "a session is no API token"
    client.logout()
    response = _api_call(client, name, world, page, other_token)
    # An object's call is 404; a collection's lists the other organization's own objects only.
    assert response.status_code == 404 or (
        response.status_code == 200 and not _names_a_victim_object(response.content.decode(), world)
    )
    assert database_state() == before
    response = _api_call(client, name, world, page, own_token)
    assert response.status_code < 300
    assert page.method != "get" or _names_a_victim_object(response.content.decode(), world), (
        "the sample call shows the organization's objects: otherwise the 404s above would prove nothing"
    )


def _names_a_victim_object(text, world):
    return any(str(code) in text for code in (world.device.code, world.space.code, world.second_space.code))


@pytest.mark.parametrize(
    ("name", "role"),
    [(name, Role.VIEWER) for name in _names_of(url_registry.ORGANIZATION_API, managers_only=True)]
    + [(name, Role.OPERATOR) for name in _names_of(url_registry.ORGANIZATION_API, admins_only=True)],
)
def test_a_token_whose_role_does_not_allow_the_call_gets_403_and_changes_nothing(client, world, name, role):
    page = url_registry.PORTAL_PAGES[name]
    token = api_token(world.organization, role)[1]
    before = database_state()
    assert _api_call(client, name, world, page, token).status_code == 403
    assert database_state() == before
