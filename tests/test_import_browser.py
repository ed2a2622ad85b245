"""The upload page in real headless Chromium: report, decision and result, fed by a real worker."""

import pytest

from vendors.models import ApprovedIdentity

from .factories import PASSWORD, DeviceModelFactory, VendorStaffFactory, serial_list_csv

ROWS = 20_000


@pytest.mark.browser
@pytest.mark.worker
def test_staff_upload_a_serial_list_watch_it_validate_and_import_it(
    shared_media_root, celery_worker_process, live_server, page, tmp_path
):
    device_model = DeviceModelFactory()
    staff = VendorStaffFactory(vendor=device_model.vendor).user
    csv_file = tmp_path / "factory.csv"
    csv_file.write_bytes(serial_list_csv(ROWS) + b"WK-0000002,nonsense\n")
    policy_violations = []
    page.on("console", lambda message: "Content Security Policy" in message.text and policy_violations.append(message))

    page.goto(f"{live_server.url}/admin/login/")
    page.fill("input[name=username]", staff.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit]")
    page.goto(f"{live_server.url}/admin/vendors/devicemodel/{device_model.pk}/change/")
    page.click("text=Upload a serial list")
    page.set_input_files("input[type=file]", str(csv_file))
    page.click("text=Check the file")

    # The job page polls (htmx) until the worker has validated the file.
    page.wait_for_selector("#bad-rows", timeout=60_000)
    assert page.locator("#bad-rows tbody tr").count() == 1
    assert f"<td>{ROWS + 2}</td>" in page.inner_html("#bad-rows")
    page.screenshot(path=page.artifacts / "report.png")
    page.click(f"text=Import the {ROWS} good rows")
    page.wait_for_selector("text=rows were added to the serial list", timeout=60_000)
    page.screenshot(path=page.artifacts / "imported.png")

    assert ApprovedIdentity.objects.filter(device_model=device_model).count() == ROWS
    assert policy_violations == []
