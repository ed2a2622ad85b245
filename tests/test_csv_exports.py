"""Every CSV the portal writes is safe to open in a spreadsheet: no cell can start a formula."""

import csv
import io

import pytest
from django.urls import reverse

from accounts.audit import record_audit
from accounts.models import Role

from .factories import ApprovedIdentityFactory, ClaimedDeviceFactory, MembershipFactory, SpaceFactory, UserFactory

pytestmark = pytest.mark.django_db

# What a spreadsheet reads as the start of a formula, alone or hidden behind a tab or carriage return.
FORMULA_STARTS = ["=1+1", "+1+1", "-1+1", "@SUM(1)", "\t=1+1", "\r=1+1"]
FORMULA_CHARACTERS = {"=", "+", "-", "@", "\t", "\r"}


def _table(response):
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode(), newline="")))


def test_the_audit_log_export_defuses_every_formula_start_in_targets_and_actor_emails(client, organization, owner):
    for start in FORMULA_STARTS:
        record_audit(organization_id=organization.pk, actor=owner, action="device_renamed", target=start)
    for local_part in ("=1", "+1", "-1"):
        actor = UserFactory(email=f"{local_part}@evil.test")
        MembershipFactory(organization=organization, user=actor, role=Role.ADMIN)
        record_audit(organization_id=organization.pk, actor=actor, action="space_created", target="Lobby")
    client.force_login(owner)

    table = _table(client.get(reverse("audit-log-csv", args=[organization.code])))

    targets = {row[3] for row in table[1:] if row[2] == "device_renamed"}
    assert targets == {f"'{start}" for start in FORMULA_STARTS}
    actors = {row[1] for row in table[1:] if row[2] == "space_created"}
    assert actors == {"'=1@evil.test", "'+1@evil.test", "'-1@evil.test"}
    assert all(cell[:1] not in FORMULA_CHARACTERS for row in table for cell in row)


def test_the_serial_list_export_defuses_every_formula_start(acme_admin_client, acme_model):
    for index, start in enumerate(FORMULA_STARTS):
        space = SpaceFactory(organization__name=f"{start} org")
        ClaimedDeviceFactory(
            identity=ApprovedIdentityFactory(device_model=acme_model, identifier_1=f"{start}{index}"),
            space=space,
            organization=space.organization,
        )

    response = acme_admin_client.get(reverse("admin:vendors_devicemodel_export", args=[acme_model.pk]))

    rows = _table(response)[1:]
    assert sorted(row[0] for row in rows) == sorted(f"'{start}{index}" for index, start in enumerate(FORMULA_STARTS))
    assert sorted(row[5] for row in rows) == sorted(f"'{start} org" for start in FORMULA_STARTS)
    assert all(cell[:1] not in FORMULA_CHARACTERS for row in rows for cell in row)


def test_a_plain_value_is_exported_as_it_is(client, organization, owner):
    record_audit(organization_id=organization.pk, actor=owner, action="space_created", target="Lobby 2")
    client.force_login(owner)
    table = _table(client.get(reverse("audit-log-csv", args=[organization.code])))
    assert table[1][1:4] == [owner.email, "space_created", "Lobby 2"]
    assert not any(cell.startswith("'") for cell in table[1])
