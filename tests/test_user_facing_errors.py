"""Every rule's refusal meant for a person is a portal.errors.UserFacingError carrying its message."""

import pytest

from accounts.members import change_role
from accounts.models import Role
from devices.actions import rename_device
from devices.claims import claim_device
from devices.commands import send_command
from portal.errors import UserFacingError
from spaces.actions import create_space

from .factories import ClaimedDeviceFactory

pytestmark = pytest.mark.django_db


def test_a_space_rule_refuses_with_a_user_facing_error(organization, owner):
    with pytest.raises(UserFacingError) as refused:
        create_space(organization, name="   ", actor=owner)
    assert refused.value.message == "A space needs a name."


def test_a_membership_rule_refuses_with_a_user_facing_error(organization, owner):
    with pytest.raises(UserFacingError) as refused:
        change_role(owner.memberships.get(), role=Role.VIEWER, actor=owner)
    assert refused.value.message.startswith("The last owner cannot be demoted")


def test_a_refused_claim_is_a_user_facing_error_that_names_its_field(space, owner, device_model):
    with pytest.raises(UserFacingError) as refused:
        claim_device(
            space=space,
            device_model=device_model,
            identifiers={"serial_number": "SN-1", "mac_address": "not a mac"},
            name="Hub",
            actor=owner,
        )
    assert "MAC address" in refused.value.message
    assert refused.value.field == "mac_address"


def test_a_device_rule_refuses_with_a_user_facing_error(space, owner):
    device = ClaimedDeviceFactory(space=space, organization=space.organization)
    with pytest.raises(UserFacingError) as refused:
        rename_device(device, name="  ", actor=owner)
    assert refused.value.message == "A device needs a name."


def test_a_refused_command_is_a_user_facing_error(space, owner):
    device = ClaimedDeviceFactory(space=space, organization=space.organization)
    with pytest.raises(UserFacingError) as refused:
        send_command(device, name="self_destruct", arguments={}, actor=owner)
    assert refused.value.message == f"{device.device_model.name} has no command 'self_destruct'."
