"""The Claim devices from a file page: template, upload, report row by row in the claim's own
wording, Claim N devices from the rows kept server-side, and the file's own refusals."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from devices.claim_files import MAX_FILE_BYTES
from devices.models import Device

from .conftest import CAMERA_CODE
from .factories import ApprovedIdentityFactory, ClaimedDeviceFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_throttle")]


def _csv(lines, bom=False):
    text = "\n".join(lines) + "\n"
    return SimpleUploadedFile("units.csv", (("\ufeff" if bom else "") + text).encode(), content_type="text/csv")


def _upload(client, space, device_model, upload):
    return client.post(reverse("claim-file", args=[space.code]), {"device_model": device_model.pk, "file": upload})


def _line(unit, name):
    return f"{unit.identifier_1},{unit.identifier_2},{name}"


@pytest.fixture
def signed_in(client, owner):
    client.force_login(owner)
    return client


def test_the_dashboard_links_the_file_page_beside_claim_device_for_owners_only(client, owner, viewer, space):
    url = reverse("space-dashboard", args=[space.code])
    client.force_login(owner)
    page = client.get(url).content.decode()
    assert "Claim devices from a file" in page
    assert "Claim Device" in page
    client.force_login(viewer)
    assert "Claim devices from a file" not in client.get(url).content.decode()


def test_the_template_of_a_model_names_its_identifier_columns_and_name(signed_in, space, device_model, camera):
    url = reverse("claim-file-template", args=[space.code])
    response = signed_in.get(url, {"device_model": device_model.pk})
    assert response["Content-Type"] == "text/csv"
    assert response.content.decode() == "serial_number,mac_address,name\r\n"
    assert signed_in.get(url, {"device_model": camera.pk}).content.decode() == "serial_number,claim_code,name\r\n"


def test_the_template_of_a_model_of_an_unconnected_vendor_is_not_offered(signed_in, space):
    from .factories import DeviceModelFactory

    other = DeviceModelFactory()
    response = signed_in.get(reverse("claim-file-template", args=[space.code]), {"device_model": other.pk})
    assert response.status_code == 302


def test_an_upload_is_reported_row_by_row_then_claimed_with_one_click(signed_in, space, device_model):
    units = [ApprovedIdentityFactory(device_model=device_model) for _ in range(2)]
    upload = _csv(["serial_number,mac_address,name", _line(units[0], "Lobby"), _line(units[1], "Hall")], bom=True)
    response = _upload(signed_in, space, device_model, upload)
    page = response.content.decode()
    assert response.status_code == 200
    assert "Every row can be claimed." in page
    assert "Claim 2 devices" in page
    assert not Device.objects.filter(status=Device.Status.CLAIMED).exists()

    batch = response.context["batch"]
    response = signed_in.post(reverse("claim-file-confirm", args=[space.code]), {"batch": batch})
    assert response.status_code == 302
    assert sorted(space.devices.values_list("name", flat=True)) == ["Hall", "Lobby"]
    # The kept rows are spent: the same confirmation claims nothing twice.
    again = signed_in.post(reverse("claim-file-confirm", args=[space.code]), {"batch": batch})
    assert again.status_code == 400
    assert "This report is no longer current" in again.content.decode()


def test_failed_rows_come_first_in_the_claim_s_own_wording_and_only_good_rows_are_kept(signed_in, space, device_model):
    good = ApprovedIdentityFactory(device_model=device_model)
    mine = ClaimedDeviceFactory(identity__device_model=device_model, space=space, name="Old")
    upload = _csv(
        [
            "name,serial_number,mac_address",
            f"Good,{good.identifier_1},{good.identifier_2}",
            f"Again,{mine.identity.identifier_1},{mine.identity.identifier_2}",
            "Short,SN-1",
        ]
    )
    response = _upload(signed_in, space, device_model, upload)
    report = response.context["report"]
    assert [(line["line"], line["result"]) for line in report] == [
        (3, "already_claimed_by_you"),
        (4, "invalid_row"),
        (2, "claimable"),
    ]
    assert (
        report[0]["message"]
        == f"Your organization has already claimed this device: it is “Old” in the space “{space.name}”."
    )
    assert "Claim 1 device" in response.content.decode()
    response = signed_in.post(reverse("claim-file-confirm", args=[space.code]), {"batch": response.context["batch"]})
    assert response.status_code == 302
    assert Device.objects.get(identity=good).name == "Good"


def test_a_row_claimed_meanwhile_is_refused_at_confirmation_and_nothing_is_claimed(
    signed_in, space, device_model, outsider
):
    units = [ApprovedIdentityFactory(device_model=device_model) for _ in range(2)]
    response = _upload(
        signed_in,
        space,
        device_model,
        _csv(["serial_number,mac_address,name", _line(units[0], "A"), _line(units[1], "B")]),
    )
    ClaimedDeviceFactory(identity=units[1], space__organization=outsider.memberships.get().organization)
    response = signed_in.post(reverse("claim-file-confirm", args=[space.code]), {"batch": response.context["batch"]})
    assert response.status_code == 409
    assert "Nothing was claimed" in response.content.decode()
    assert response.context["report"][0]["result"] == "claimed_by_another_organization"
    assert not Device.objects.filter(identity=units[0]).exists()


def test_a_claim_code_is_kept_for_the_confirmation_as_its_hash_only(signed_in, space, camera, unit):
    response = _upload(
        signed_in, space, camera, _csv(["serial_number,claim_code,name", f"{unit.identifier_1},{CAMERA_CODE},Door"])
    )
    assert CAMERA_CODE not in str(dict(signed_in.session))
    signed_in.post(reverse("claim-file-confirm", args=[space.code]), {"batch": response.context["batch"]})
    assert Device.objects.get(identity=unit).status == Device.Status.CLAIMED


def test_a_name_that_looks_like_a_formula_is_shown_and_stored_as_text(signed_in, space, device_model):
    unit = ApprovedIdentityFactory(device_model=device_model)
    formula = "=cmd|' /C calc'!A0"
    response = _upload(
        signed_in, space, device_model, _csv(["serial_number,mac_address,name", _line(unit, f'"{formula}"')])
    )
    assert "=cmd|&#x27; /C calc&#x27;!A0" in response.content.decode()
    signed_in.post(reverse("claim-file-confirm", args=[space.code]), {"batch": response.context["batch"]})
    assert Device.objects.get(identity=unit).name == formula


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"serial,mac\nA,B\n", "The first line must name the columns"),
        (b"serial_number,mac_address,name\n", "The file has a header but no rows."),
        (b"serial_number,mac_address,name\nSN-1,\xff,x\n", "Line 2 is not UTF-8 text"),
    ],
)
def test_a_file_that_cannot_be_read_is_refused_keeping_the_model_chosen(
    signed_in, space, device_model, content, message
):
    response = _upload(signed_in, space, device_model, SimpleUploadedFile("units.csv", content))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert f'value="{device_model.pk}" selected' in response.content.decode()


def test_a_file_of_more_than_ten_thousand_rows_or_too_many_bytes_is_refused(signed_in, space, device_model):
    lines = ["serial_number,mac_address,name"] + [f"SN-{n},02:00:00:00:00:01,x" for n in range(10_001)]
    response = _upload(signed_in, space, device_model, _csv(lines))
    assert "more than 10,000 rows" in response.content.decode()
    big = SimpleUploadedFile("big.csv", b"x" * (MAX_FILE_BYTES + 1))
    assert "larger than" in _upload(signed_in, space, device_model, big).content.decode()


def test_a_file_of_guesses_is_refused_past_the_claim_limit(signed_in, space, device_model, settings):
    settings.CLAIM_FAILURE_LIMIT = 3
    lines = ["serial_number,mac_address,name"] + [f"SN-GUESS-{n},02:00:00:00:00:01,x" for n in range(4)]
    response = _upload(signed_in, space, device_model, _csv(lines))
    assert response.status_code == 400
    assert "Too many failed claim attempts" in response.content.decode()
    assert response.context["report"] is None
