"""Rules the database itself enforces, whatever the Python code does."""

import pytest
from django.db import IntegrityError, transaction

from devices.models import Device
from vendors.models import ApprovedIdentity

from .factories import ApprovedIdentityFactory, ClaimedDeviceFactory, DeviceFactory, DeviceModelFactory, SpaceFactory

pytestmark = pytest.mark.django_db


def test_device_in_another_organizations_space_is_refused_by_the_database():
    device = ClaimedDeviceFactory()
    foreign_space = SpaceFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Device.objects.filter(pk=device.pk).update(space=foreign_space)


def test_claimed_device_without_space_is_refused_by_the_database():
    device = ClaimedDeviceFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Device.objects.filter(pk=device.pk).update(space=None)


def test_unclaimed_device_with_organization_is_refused_by_the_database():
    device = DeviceFactory()
    space = SpaceFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Device.objects.filter(pk=device.pk).update(organization=space.organization, space=space)


def test_one_identity_has_at_most_one_device():
    device = DeviceFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Device.objects.create(identity=device.identity, device_model=device.device_model)


def test_serial_number_is_unique_within_a_model():
    identity = ApprovedIdentityFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        ApprovedIdentity.objects.create(
            device_model=identity.device_model, identifier_1=identity.identifier_1, identifier_2="02:00:00:00:FF:FF"
        )


def test_mac_address_is_unique_within_a_model():
    identity = ApprovedIdentityFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        ApprovedIdentity.objects.create(
            device_model=identity.device_model, identifier_1="SN-OTHER", identifier_2=identity.identifier_2
        )


def test_same_identifiers_may_be_approved_for_two_models():
    identity = ApprovedIdentityFactory()
    other_model = DeviceModelFactory(vendor=identity.device_model.vendor)
    ApprovedIdentity.objects.create(
        device_model=other_model, identifier_1=identity.identifier_1, identifier_2=identity.identifier_2
    )
    assert ApprovedIdentity.objects.filter(identifier_1=identity.identifier_1).count() == 2
