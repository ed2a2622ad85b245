"""Who may see each URL pattern of the portal: the registry the tenant isolation walk checks
(tests/test_tenant_isolation.py).

Every named URL pattern must have one line here; a new pattern without one fails the walk with
its name. A line says the kind of page and how to build its URL arguments for a sample
organization (`world`, see the walk's fixture) and, for a page that takes a POST, a POST the
owner's succeeds with (the walk proves it does: the database changes), e.g.

    "space-dashboard": organization_page(a_space),
    "device-rename": organization_page(a_device, managers_only=True, post=lambda w: {"name": "Renamed"}),

Kinds: `public` (anyone, signed in or not), `own_account` (the signed-in user's own things,
nobody else's), `organization_page` (shows or changes an organization's objects: an outsider
gets 404 on GET and on the owner's POST and nothing changes; with managers_only=True a viewer
gets 403; a page that answers GET with 405 must say its POST),
`device_api` (the device API calls authenticated by the device key: a user's session, even
the owner's, gets 401 and changes nothing), `organization_api` (the customer API, authenticated
by an organization's API token: a user's session gets 401, another organization's token 404 on
the call that succeeds for the organization's own, and nothing changes; a viewer's token gets 403
on a call that needs more than reading).
Admin URLs are covered by ADMIN_MODELS (one line per model registered in the admin: how to
build an object of *another* vendor or organization) and ADMIN_SITE_PAGES (the admin's own pages).
"""

from dataclasses import dataclass, field
from typing import Any

from accounts.models import Role
from alerts.preferences import unsubscribe_token
from vendors.labels import label_payload

from .factories import sent_once_key

PUBLIC = "public"
OWN_ACCOUNT = "own account"
ORGANIZATION = "organization object"
DEVICE_API = "device API"
ORGANIZATION_API = "organization API"


@dataclass(frozen=True)
class Page:
    kind: str
    kwargs: Any = field(default=lambda world: {})
    # For organization pages: only owners and admins may use it (a viewer gets 403).
    managers_only: bool = False
    # For organization pages that take a POST: the form data the owner's POST succeeds with.
    # For the organization API: the JSON body of the call (with `method`) that succeeds.
    post: Any = None
    method: str = "get"
    # For the organization API: only owners' and admins' tokens may (an operator's gets 403 too).
    admins_only: bool = False


def public(kwargs=None):
    return Page(PUBLIC, kwargs or (lambda world: {}))


def own_account(kwargs=None):
    return Page(OWN_ACCOUNT, kwargs or (lambda world: {}))


def organization_page(kwargs, *, managers_only=False, post=None):
    return Page(ORGANIZATION, kwargs, managers_only, post)


def _label_of(device):
    """The payload of the label of `device`'s unit (of a model without claim codes)."""
    model = device.identity.device_model
    return label_payload(model.vendor.slug, model.slug, device.identity.identifiers)


def device_api(kwargs=None):
    """Authenticated by the device's key alone: no user's session, whoever's, opens it."""
    return Page(DEVICE_API, kwargs or (lambda world: {}))


def organization_api(kwargs=None, *, method="get", body=None, managers_only=False, admins_only=False):
    """A customer API call (`method`, with the JSON `body` the organization's own admin token
    succeeds with); managers_only: a viewer's token is refused; admins_only: an operator's too."""
    return Page(ORGANIZATION_API, kwargs or (lambda world: {}), managers_only or admins_only, body, method, admins_only)


def claim_body(unit, space):
    """The customer API's claim of `unit` (of a model without claim codes) into `space`."""
    model = unit.device_model
    return {
        "space": str(space.code),
        "vendor": model.vendor.slug,
        "model": model.slug,
        "identifiers": unit.identifiers,
        "name": "Claimed through the API",
    }


# URL arguments for the sample organization `w` most pages take.
def the_organization(w):
    return {"code": w.organization.code}


def a_space(w):
    return {"code": w.space.code}


def a_device(w):
    return {"code": w.device.code}


def a_device_id(w):
    return {"device_id": w.device.code}


def an_invitation(w):
    return {"code": w.organization.code, "pk": w.invitation.pk}


def a_member(w):
    return {"code": w.organization.code, "pk": w.viewer_membership.pk}


def a_received_request(w):
    """A request to the organization about its device."""
    return {"code": w.received_request.code}


def a_made_request(w):
    """A request the organization made, answered with a release."""
    return {"code": w.made_request.code}


def a_webhook(w):
    return {"code": w.organization.code, "endpoint": w.webhook.code}


def a_webhook_delivery(w):
    return {"code": w.organization.code, "delivery": w.webhook_delivery.code}


def nothing(w):
    """A POST with no fields: a button."""
    return {}


PORTAL_PAGES = {
    # Accounts
    "login": public(),
    "logout": own_account(),
    "password_change": own_account(),
    "password_change_done": own_account(),
    "password_reset": public(),
    "password_reset_done": public(),
    "password_reset_confirm": public(lambda w: {"uidb64": "MQ", "token": "set-password"}),
    "password_reset_complete": public(),
    "invitation-accept": public(lambda w: {"token": w.invitation_token}),
    # Second factors and sessions (docs/accounts-and-isolation.md): the code step belongs to the
    # password step's session; the rest to the signed-in person, looked up among their own.
    "two-factor-code": public(),
    "account": own_account(),
    "two-factor-setup": own_account(),
    "recovery-codes": own_account(),
    "two-factor-turn-off": own_account(),
    "passkey-rename": own_account(lambda w: {"pk": 1}),
    "passkey-remove": own_account(lambda w: {"pk": 1}),
    "session-end": own_account(lambda w: {"reference": "0" * 32}),
    "sessions-end-others": own_account(),
    # The passkey ceremonies' JSON calls (django-otp-webauthn): adding one needs a session (403
    # JSON without), signing in with one proves itself by the passkey's signature.
    "otp_webauthn:credential-registration-begin": public(),
    "otp_webauthn:credential-registration-complete": public(),
    "otp_webauthn:credential-authentication-begin": public(),
    "otp_webauthn:credential-authentication-complete": public(),
    "otp_webauthn:js-i18n-catalog": public(),
    "members": organization_page(the_organization, post=lambda w: {"email": "new@example.test", "role": Role.VIEWER}),
    "member-role": organization_page(a_member, managers_only=True, post=lambda w: {"role": Role.OPERATOR}),
    "member-remove": organization_page(a_member, managers_only=True, post=nothing),
    "invitation-withdraw": organization_page(an_invitation, managers_only=True, post=nothing),
    # The world's organization has a second owner: the last one may not leave.
    "organization-leave": organization_page(the_organization, post=nothing),
    "two-factor-policy": organization_page(the_organization, managers_only=True, post=lambda w: {"required": "on"}),
    "audit-log": organization_page(the_organization, managers_only=True),
    "audit-log-csv": organization_page(the_organization, managers_only=True),
    # API tokens: the POST answers with the new token's text, once.
    "api-tokens": organization_page(
        the_organization,
        managers_only=True,
        post=lambda w: {"name": "Inventory", "role": Role.VIEWER, "sending": sent_once_key()},
    ),
    "api-token-revoke": organization_page(
        lambda w: {"code": w.organization.code, "token": w.api_token.code}, managers_only=True, post=nothing
    ),
    # Offline alerts: the member's own choices, and the e-mail's link, whose signed token is the
    # proof (a GET only asks; the mail program's one-click POST turns alerts off).
    "alert-preferences": own_account(),
    "alert-unsubscribe": public(lambda w: {"token": unsubscribe_token(w.viewer_membership)}),
    # Spaces
    "home": own_account(),
    "organization-overview": organization_page(the_organization),
    "organization-devices": organization_page(the_organization),
    "organization-devices-csv": organization_page(the_organization),
    "space-dashboard": organization_page(a_space),
    "space-create": organization_page(the_organization, managers_only=True, post=lambda w: {"name": "Third"}),
    "space-settings": organization_page(a_space, managers_only=True, post=lambda w: {"name": "Renamed"}),
    "space-delete": organization_page(
        a_space, managers_only=True, post=lambda w: {"move_devices_to": w.second_space.pk}
    ),
    # A wizard: no single POST claims; its GET shows the owner the first step.
    "claim-device": organization_page(a_space, managers_only=True),
    # The report of a checked file is the upload's answer; confirming needs the batch that upload
    # kept in the session (its GET goes back to the page).
    "claim-file": organization_page(a_space, managers_only=True),
    "claim-file-confirm": organization_page(a_space, managers_only=True),
    "claim-file-template": organization_page(a_space, managers_only=True),
    # A label's link keeps what its payload says in the visitor's session and redirects; what it
    # names is shown only once signed in, in the spaces of the user's own organizations.
    "claim-label": public(lambda w: {"payload": _label_of(w.device)}),
    "claim-label-space": own_account(),
    "space-bulk-action": organization_page(
        a_space,
        managers_only=True,
        post=lambda w: {"action": "move", "devices": [w.device.code], "space": w.second_space.code},
    ),
    # Release requests: the requester's list and request form (the proof it asks about is in the
    # session, never in the URL), the holder's answers, and the requester's claim of a released unit.
    "release-requests": organization_page(the_organization),
    "release-request-ask": organization_page(the_organization, managers_only=True),
    "release-request-release": organization_page(
        a_received_request, managers_only=True, post=lambda w: {"confirm_name": w.device.name}
    ),
    "release-request-decline": organization_page(a_received_request, managers_only=True, post=nothing),
    "release-request-claim": organization_page(a_made_request, managers_only=True),
    # Webhooks: owners and admins only.
    "webhooks": organization_page(
        the_organization,
        managers_only=True,
        post=lambda w: {"url": "https://hooks.example.com/new", "events": [], "sending": sent_once_key()},
    ),
    "webhook-change": organization_page(a_webhook, managers_only=True, post=lambda w: {"events": ["device.moved"]}),
    "webhook-roll-secret": organization_page(a_webhook, managers_only=True, post=nothing),
    "webhook-ping": organization_page(a_webhook, managers_only=True, post=nothing),
    "webhook-remove": organization_page(a_webhook, managers_only=True, post=nothing),
    "webhook-resend": organization_page(a_webhook_delivery, managers_only=True, post=nothing),
    # Devices
    "device-detail": organization_page(a_device),
    "device-commands": organization_page(a_device),
    "device-send-command": organization_page(a_device, managers_only=True, post=lambda w: {"command": "reboot"}),
    "device-configuration": organization_page(
        a_device, managers_only=True, post=lambda w: {"volume": 10, "display_name": "Hall", "time_zone": "UTC"}
    ),
    "device-rename": organization_page(a_device, managers_only=True, post=lambda w: {"name": "Renamed"}),
    "device-move": organization_page(a_device, managers_only=True, post=lambda w: {"space": w.second_space.code}),
    "device-reactivation": organization_page(a_device, managers_only=True, post=nothing),
    "device-release": organization_page(a_device, managers_only=True, post=lambda w: {"confirm_name": w.device.name}),
    "device-reset-key": organization_page(a_device, managers_only=True, post=nothing),
    # Device API (docs/device-api.md): activation is open to any unit, the rest needs the device key.
    "device-api:activations": public(),
    "device-api:activation": public(lambda w: {"operation_id": "7b0c9d2e-3f4a-4b5c-8d6e-9f0a1b2c3d4e"}),
    "device-api:heartbeat": device_api(),
    "device-api:commands": device_api(),
    "device-api:command-result": device_api(lambda w: {"command_id": "0d8f3c1e-5b7a-4c2d-9e6f-1a2b3c4d5e6f"}),
    "device-api:config": device_api(),
    "device-api:health": public(),
    # Both APIs' description (config/openapi.py).
    "openapi": public(),
    # Customer API (docs/customer-api.md): an organization's API token.
    "org-api:api-root": public(),
    "org-api:list_spaces": organization_api(),
    "org-api:get_device": organization_api(a_device_id),
    "org-api:list_devices": organization_api(),
    "org-api:move_device": organization_api(
        a_device_id, method="post", body=lambda w: {"space": str(w.second_space.code)}, admins_only=True
    ),
    "org-api:send_command": organization_api(
        a_device_id, method="post", body=lambda w: {"name": "reboot"}, managers_only=True
    ),
    "org-api:save_configuration": organization_api(
        a_device_id, method="put", body=lambda w: {"values": {"volume": 10}}, managers_only=True
    ),
    "org-api:release_device": organization_api(
        a_device_id, method="post", body=lambda w: {"confirm_name": w.device.name}, admins_only=True
    ),
    "org-api:post_claims": organization_api(
        method="post", body=lambda w: claim_body(w.unclaimed_unit, w.space), admins_only=True
    ),
}

# One line per model registered in the admin: an object vendor staff of `w.staff_vendor` must not
# see or change (another vendor's, or a customer organization's).
ADMIN_MODELS = {
    "auth.group": lambda w: w.group,
    "accounts.user": lambda w: w.owner,
    "accounts.organization": lambda w: w.organization,
    "accounts.invitation": lambda w: w.invitation,
    "accounts.auditentry": lambda w: w.audit_entry,
    "vendors.claimingmethod": lambda w: w.other_vendor_method,
    "vendors.vendor": lambda w: w.other_vendor,
    "vendors.devicemodel": lambda w: w.device.device_model,
    "vendors.approvedidentity": lambda w: w.device.identity,
    "vendors.vendorstaff": lambda w: w.other_vendor_staff,
    "spaces.space": lambda w: w.space,
    "devices.device": lambda w: w.device,
    "devices.deviceevent": lambda w: w.device_event,
    "vendors.productionbatch": lambda w: w.production_batch,
    "devices.activationoperation": lambda w: w.activation_operation,
    "vendors.importjob": lambda w: w.import_job,
    "vendors.claimcodeissue": lambda w: w.claim_code_issue,
    "vendors.vendorauditentry": lambda w: w.vendor_audit_entry,
}

# The admin site's own pages (not about one model). `True`: reachable without signing in.
ADMIN_SITE_PAGES = {
    "admin:index": False,
    "admin:login": True,
    "admin:logout": False,
    "admin:password_change": False,
    "admin:password_change_done": False,
    "admin:autocomplete": False,
    "admin:jsi18n": False,
    "admin:app_list": False,
    # Django's redirect to an object's public page; 404 for models without one.
    "admin:view_on_site": True,
    # The catch-all that sends unknown admin URLs to sign-in (unnamed: keyed by its route).
    "admin/(?P<url>.*)$": False,
}
