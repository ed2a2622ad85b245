"""The proof a release request is bound to, kept in the session of the person who gave it.

claim_device raises ClaimedByAnotherOrganization only once the values typed (or the label opened)
proved the unit; the wizard and the label flow then keep here which unit it was, for which
organization, and the keyed hash of the claim code that proved it. The request page reads it from
here, never from a form field: whoever has not proven a unit has nothing here to ask about.
"""

import time

from devices.models import Device

KEPT = "release_request_proof"  # {"device", "organization", "code", "until"}
# The proof waits this long (seconds) for its person to write the message.
LIFETIME = 30 * 60


def keep(request, *, device, organization, claim_code=None):
    """Keep the proof of a claim into `organization` refused because another organization holds
    `device` (`claim_code`: the HashedClaimCode that proved it, None for models without codes)."""
    request.session[KEPT] = {
        "device": device.pk,
        "organization": organization.pk,
        "code": claim_code.digest if claim_code is not None else "",
        "until": time.time() + LIFETIME,
    }


def kept(request, organization):
    """(device, claim code hash) of the proof kept for `organization`, or None (none, another
    organization's, or older than LIFETIME)."""
    proof = request.session.get(KEPT)
    if not proof or proof["organization"] != organization.pk or proof["until"] < time.time():
        return None
    device = Device.objects.select_related("identity", "device_model__vendor").filter(pk=proof["device"]).first()
    return (device, proof["code"]) if device is not None else None


def forget(request):
    request.session.pop(KEPT, None)
