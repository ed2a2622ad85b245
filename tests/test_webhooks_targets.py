"""Server-side request forgery: what webhook URLs and the addresses they resolve to are refused,
on save and at send time, and what WEBHOOK_ALLOW_PRIVATE_TARGETS and WEBHOOK_ALLOW_HTTP change."""

import pytest

from devices.actions import move_device
from webhooks.delivery import deliver_round
from webhooks.models import Delivery
from webhooks.targets import RefusedTarget, check_url, resolve_target

from .factories import ClaimedDeviceFactory, SpaceFactory, webhook_endpoint
from .webhook_receiver import Receiver

REFUSED = [
    ("http://127.0.0.1/hook", "loopback"),
    ("http://127.8.9.10:8080/hook", "loopback"),
    ("http://10.1.2.3/hook", "private"),
    ("http://172.16.0.1/hook", "private"),
    ("http://172.31.255.254/hook", "private"),
    ("http://192.168.1.1/hook", "private"),
    ("http://169.254.10.20/hook", "link-local"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://[fd00:ec2::254]/latest/meta-data/", "metadata"),
    ("http://100.64.0.1/hook", "carrier-grade NAT"),
    ("http://0.0.0.0/hook", "unspecified"),
    ("http://224.0.0.1/hook", "multicast"),
    ("http://240.0.0.1/hook", "reserved"),
    ("http://[::1]/hook", "loopback"),
    ("http://[::ffff:127.0.0.1]/hook", "IPv4-mapped"),
    ("http://[fe80::1]/hook", "link-local"),
    ("http://[fc00::1]/hook", "private"),
    ("http://localhost:8000/hook", "localhost"),
]


@pytest.mark.parametrize(("url", "why"), REFUSED)
def test_a_url_at_a_non_public_address_is_refused_on_save(settings, url, why):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    with pytest.raises(RefusedTarget, match=why):
        check_url(url)


@pytest.mark.parametrize(("url", "why"), [case for case in REFUSED if "localhost" not in case[0]])
def test_a_non_public_address_is_refused_at_send_time_too(settings, url, why):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    with pytest.raises(RefusedTarget, match=why):
        resolve_target(url)


def test_a_hostname_resolving_to_loopback_is_refused_at_send_time(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    with pytest.raises(RefusedTarget, match="localhost resolves to a loopback address"):
        resolve_target("http://localhost:8000/hook")


@pytest.mark.parametrize("url", [case[0] for case in REFUSED])
def test_non_public_addresses_are_allowed_when_private_targets_are(settings, url):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    assert check_url(url) == url


def test_a_public_address_is_allowed_and_connected_to_as_resolved(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    target = resolve_target("https://93.184.215.14:8443/hooks?x=1")
    assert (target.address, target.port, target.path, target.host_header) == (
        "93.184.215.14",
        8443,
        "/hooks?x=1",
        "93.184.215.14:8443",
    )


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://hooks.example.com/", "http"),
        ("file:///etc/passwd", "http"),
        ("https://user:secret@hooks.example.com/", "password"),
        ("https:///nohost", "host"),
        ("https://hooks.example.com:99999/", "valid"),
    ],
)
def test_urls_that_are_not_web_addresses_are_refused(url, why):
    with pytest.raises(RefusedTarget, match=why):
        check_url(url)


def test_production_accepts_https_only(settings):
    settings.WEBHOOK_ALLOW_HTTP = False
    assert check_url("https://hooks.example.com/portal")
    with pytest.raises(RefusedTarget, match="https://"):
        check_url("http://hooks.example.com/portal")


def test_an_endpoint_saved_while_private_targets_were_allowed_is_not_sent_to_once_they_are_not(
    settings, organization, space
):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    with Receiver() as receiver:
        endpoint, _ = webhook_endpoint(organization, receiver.url(host="localhost"))
        device = ClaimedDeviceFactory(space=space)
        move_device(device, space=SpaceFactory(organization=organization), actor=None)
        settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False

        deliver_round(endpoint.pk)

        assert receiver.requests == []
    pending = Delivery.objects.get()
    assert pending.status == Delivery.Status.PENDING
    assert "a loopback address: not sent" in pending.last_error


def test_a_redirect_to_loopback_is_not_followed(settings, organization, space):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    with Receiver() as inside, Receiver(lambda path: (307, {"Location": inside.url("/admin")}, 0)) as outside:
        endpoint, _ = webhook_endpoint(organization, outside.url())
        move_device(ClaimedDeviceFactory(space=space), space=SpaceFactory(organization=organization), actor=None)

        deliver_round(endpoint.pk)

        assert len(outside.requests) == 1
        assert inside.requests == []
    assert Delivery.objects.get().last_error == "Redirect not followed (HTTP 307)."


def test_a_refusal_at_send_time_does_not_tell_the_customer_what_an_internal_name_resolves_to(settings):
    # The refusal lands in the delivery's last error on the customer's page: naming the address
    # would make the portal a lookup service for names only its own network resolves.
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    with pytest.raises(RefusedTarget) as refused:
        resolve_target("http://localhost:8000/hook")
    assert "127.0.0.1" not in refused.value.message
    assert "::1" not in refused.value.message
    assert "a loopback address" in refused.value.message
