"""Activation in the admin: vendor staff manage factory batch keys; support reads the operations."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from vendors.models import ProductionBatch

from .factories import PASSWORD, ProductionBatchFactory, VendorStaffFactory

pytestmark = pytest.mark.django_db


def test_a_batch_public_key_must_be_32_bytes_of_base64url(client, admin_user):
    batch = ProductionBatchFactory()
    client.force_login(admin_user)
    url = reverse("admin:vendors_productionbatch_add")
    response = client.post(url, {"device_model": batch.device_model.pk, "name": "bad", "public_key": "abc"})
    assert response.status_code == 200
    assert "Ed25519 public key" in response.content.decode()
    assert not ProductionBatch.objects.filter(name="bad").exists()


def test_vendor_staff_see_only_their_vendors_batches_and_can_revoke_them(client):
    mine = ProductionBatchFactory()
    theirs = ProductionBatchFactory()
    staff = VendorStaffFactory(vendor=mine.device_model.vendor)
    staff.user.user_permissions.set(Permission.objects.filter(codename__endswith="_productionbatch"))
    assert client.login(email=staff.user.email, password=PASSWORD)

    listing = client.get(reverse("admin:vendors_productionbatch_changelist")).content.decode()
    assert mine.name in listing
    assert theirs.name not in listing

    client.post(
        reverse("admin:vendors_productionbatch_changelist"),
        {"action": "revoke_batches", "_selected_action": [mine.pk, theirs.pk]},
    )
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.is_revoked
    assert not theirs.is_revoked, "another vendor's batch is out of reach"


def test_activation_operations_are_listed_read_only_in_the_admin(client, admin_user):
    from devices.models import ActivationOperation

    operation = ActivationOperation.objects.create(
        vendor_slug="acme", model_slug="hub-2", identifiers={"serial_number": "X"}, device_public_key="k" * 43
    )
    client.force_login(admin_user)
    listing = client.get(reverse("admin:devices_activationoperation_changelist"))
    assert str(operation.pk) in listing.content.decode()
    assert client.get(reverse("admin:devices_activationoperation_add")).status_code == 403
