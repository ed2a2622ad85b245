"""Scan the label in real headless Chromium: its fake camera films a unit's QR label, the wizard
reads it (with the browser's BarcodeDetector where it has one, and with the vendored decoder) and
claims the unit. The last screen of each test lands in test-artifacts/<test name>/."""

import pytest
import segno
from django.core.cache import cache
from playwright.sync_api import expect

from accounts.models import Role
from devices.models import Device
from vendors.labels import label_url

from .conftest import ARTIFACTS, launch_chromium
from .factories import (
    PASSWORD,
    ApprovedIdentityFactory,
    DeviceModelFactory,
    MembershipFactory,
    OrganizationFactory,
    SpaceFactory,
    VendorFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CODE = "12345678902"
WIDTH, HEIGHT = 640, 480


def label_video(path, text):
    """A one-frame Y4M video of a QR code of `text`, black on white, as Chromium's fake camera plays it."""
    rows = [bytes(row) for row in segno.make(text, error="m").matrix_iter(scale=6, border=4)]
    assert len(rows) <= HEIGHT, "the label must fit in the frame"
    left, top = (WIDTH - len(rows[0])) // 2, (HEIGHT - len(rows)) // 2
    luma = bytearray(b"\xeb" * (WIDTH * HEIGHT))
    for y, row in enumerate(rows):
        start = (top + y) * WIDTH + left
        luma[start : start + len(row)] = bytes(16 if dark else 235 for dark in row)
    chroma = b"\x80" * (WIDTH * HEIGHT // 4)
    header = f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F10:1 Ip A1:1 C420jpeg\n".encode()
    path.write_bytes(header + b"FRAME\n" + bytes(luma) + chroma + chroma)
    return path


@pytest.fixture
def film(playwright_driver, tmp_path, request):
    """Opens pages of Chromiums whose fake camera films a QR code of the text given (the vendored
    decoder only, when the browser's is hidden from the page)."""
    opened = []

    def open_page(text, *, browsers_decoder=True):
        video = label_video(tmp_path / f"label-{len(opened)}.y4m", text)
        chromium = launch_chromium(
            playwright_driver,
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={video}",
        )
        context = chromium.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)
        if not browsers_decoder:
            page.add_init_script("delete window.BarcodeDetector;")
        opened.append((chromium, context, page))
        return page

    yield open_page
    artifacts = ARTIFACTS / request.node.name
    artifacts.mkdir(parents=True, exist_ok=True)
    for index, (chromium, context, page) in enumerate(opened):
        page.screenshot(path=artifacts / f"last-{index}.png", full_page=True)
        context.close()
        chromium.close()


@pytest.fixture(params=["browser's decoder", "vendored decoder"])
def camera_page(film, live_server, request):
    """A page of a Chromium whose camera films the label of Acme Cam 1 unit AC1-260001."""
    link = label_url(live_server.url, "acme", "cam-1", {"serial_number": "AC1-260001"}, CODE)
    return film(link, browsers_decoder=request.param == "browser's decoder")


def _identifier_step(page, live_server, shop):
    page.goto(f"{live_server.url}/accounts/login/?next=/spaces/{shop['space'].code}/claim/")
    page.get_by_label("E-mail address").fill("alice@initech.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("Acme Cam 1").check()
    page.get_by_role("button", name="Next").click()
    expect(page).to_have_title("Step 2 of 3 · Identifiers · Claim a device · Device Portal")


@pytest.fixture
def shop(transactional_db):
    cache.clear()
    acme = VendorFactory(name="Acme Devices", slug="acme")
    DeviceModelFactory(vendor=acme, name="Acme Hub 2", slug="hub-2")
    camera = DeviceModelFactory(vendor=acme, name="Acme Cam 1", slug="cam-1", claim_code=True)
    organization = OrganizationFactory(name="Initech", vendors=[acme])
    space = SpaceFactory(organization=organization, name="Auditorium")
    MembershipFactory(organization=organization, role=Role.OWNER, user__email="alice@initech.example")
    unit = ApprovedIdentityFactory(device_model=camera, identifier_1="AC1-260001", claim_code=CODE)
    return {"space": space, "unit": unit}


def test_an_owner_claims_a_unit_by_scanning_its_label_with_the_camera(camera_page, live_server, shop):
    page = camera_page
    page.goto(f"{live_server.url}/accounts/login/?next=/spaces/{shop['space'].code}/claim/")
    page.get_by_label("E-mail address").fill("alice@initech.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    expect(page).to_have_title("Step 1 of 3 · Model · Claim a device · Device Portal")
    page.get_by_label("Acme Cam 1").check()
    page.get_by_role("button", name="Next").click()

    expect(page).to_have_title("Step 2 of 3 · Identifiers · Claim a device · Device Portal")
    page.get_by_role("button", name="Scan the label").click()
    expect(page.get_by_role("status")).to_contain_text("Label read")
    expect(page.get_by_label("Serial number")).to_have_value("AC1-260001")
    expect(page.get_by_label("Claim code")).to_have_value(CODE)
    page.get_by_role("button", name="Next").click()

    expect(page).to_have_title("Step 3 of 3 · Name · Claim a device · Device Portal")
    page.get_by_label("Device name").fill("Door camera")
    page.get_by_role("button", name="Claim a device").click()

    expect(page.get_by_role("alert")).to_contain_text("“Door camera” is claimed and now in Auditorium")
    assert Device.objects.get(identity=shop["unit"]).status == Device.Status.CLAIMED


def test_the_scan_button_is_hidden_where_there_is_no_camera(page, live_server, shop):
    page.goto(f"{live_server.url}/accounts/login/?next=/spaces/{shop['space'].code}/claim/")
    page.get_by_label("E-mail address").fill("alice@initech.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("Acme Cam 1").check()
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_label("Claim code")).to_be_visible()
    expect(page.get_by_role("button", name="Scan the label")).to_be_hidden()


def test_a_qr_code_linking_to_another_site_fills_nothing_and_says_so(film, live_server, shop):
    page = film(label_url("https://elsewhere.example", "acme", "cam-1", {"serial_number": "AC1-260001"}, CODE))
    _identifier_step(page, live_server, shop)
    page.get_by_role("button", name="Scan the label").click()
    expect(page.get_by_role("status")).to_contain_text("links to elsewhere.example, not to this portal")
    expect(page.get_by_label("Serial number")).to_have_value("")
    expect(page.get_by_label("Claim code")).to_have_value("")


def test_the_scan_button_stops_the_camera(film, live_server, shop):
    page = film("not a label")  # read, and ignored: the camera keeps filming
    _identifier_step(page, live_server, shop)
    page.get_by_role("button", name="Scan the label").click()
    expect(page.locator("[data-scan-video]")).to_be_visible()
    page.get_by_role("button", name="Stop the camera").click()
    expect(page.get_by_role("status")).to_have_text("Camera stopped.")
    expect(page.locator("[data-scan-video]")).to_be_hidden()
    assert page.evaluate("document.querySelector('[data-scan-video]').srcObject") is None
    expect(page.get_by_role("button", name="Scan the label")).to_be_visible()
