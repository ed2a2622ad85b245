"""Junk in the query string of every admin list a vendor staff user can open (non-numeric and huge
ids, unknown choices, NUL, very long terms): a list, a redirect or a 400, never a 500."""

import pytest

from .factories import ApprovedIdentityFactory, ClaimedDeviceFactory

pytestmark = pytest.mark.django_db

CHANGELISTS = [
    "/admin/vendors/vendor/",
    "/admin/vendors/claimingmethod/",
    "/admin/vendors/devicemodel/",
    "/admin/vendors/approvedidentity/",
    "/admin/vendors/importjob/",
    "/admin/vendors/vendorauditentry/",
    "/admin/vendors/productionbatch/",
    "/admin/devices/device/",
    "/admin/devices/activationoperation/",
]

HUGE = "9" * 30
JUNK = [
    # the filters these lists offer, with values they never offer
    *(f"model={value}" for value in ("abc", HUGE, "-1", "1.5", "%00", "1%00")),
    *(f"device_status={value}" for value in ("zzz", "%00")),
    *(f"status__exact={value}" for value in ("zzz", "%00")),
    "action__exact=%00",
    "error_code__exact=%00",
    *(f"device_model__id__exact={value}" for value in ("abc", HUGE, "%00")),
    *(f"vendor__id__exact={value}" for value in ("abc", HUGE)),
    *(f"device_model={value}" for value in ("abc", HUGE)),
    # lookups on the rows' own fields, which the admin allows
    *(f"id={value}" for value in ("abc", HUGE, "%00")),
    f"pk={HUGE}",
    "created_at__gte=yesterday",
    "identifier_1=%00",
    "status__in=a,%00",
    # search, ordering, paging
    "q=%00",
    "q=SN%00-1",
    "q=" + "x" * 5000,
    f"q={HUGE}",
    "o=abc",
    "o=99",
    "o=-",
    "o=1.-2.x",
    "p=abc",
    f"p={HUGE}",
    "p=-1",
    "_to_field=secret",
    "e=1",
]


@pytest.fixture
def some_rows(acme_model):
    ClaimedDeviceFactory(identity=ApprovedIdentityFactory(device_model=acme_model))


@pytest.mark.parametrize("query", JUNK)
@pytest.mark.parametrize("changelist", CHANGELISTS)
def test_junk_query_parameters_never_give_a_500(acme_admin_client, some_rows, changelist, query):
    response = acme_admin_client.get(f"{changelist}?{query}")
    assert response.status_code in (200, 302, 400), response.status_code


def test_an_unknown_model_in_the_serial_list_filter_shows_every_unit(acme_admin_client, acme_model):
    unit = ApprovedIdentityFactory(device_model=acme_model)
    response = acme_admin_client.get("/admin/vendors/approvedidentity/?model=abc")
    assert response.status_code == 200
    assert unit.identifier_1 in response.text


@pytest.mark.parametrize("changelist", CHANGELISTS)
def test_list_filters_offer_only_the_staffs_own_models(acme_admin_client, acme_model, globex_model, changelist):
    globex_model.name = "Globex Secret Display"
    globex_model.save()
    response = acme_admin_client.get(changelist)
    assert response.status_code == 200
    assert "Globex Secret Display" not in response.text


@pytest.mark.parametrize("selected", ["abc", HUGE, "1\x00", ""])
@pytest.mark.parametrize(
    ("changelist", "action"),
    [
        ("/admin/vendors/approvedidentity/", "revoke"),
        ("/admin/vendors/approvedidentity/", "reapprove"),
        ("/admin/vendors/importjob/", "resume"),
        ("/admin/vendors/productionbatch/", "revoke_batches"),
        ("/admin/vendors/approvedidentity/", "no_such_action"),
    ],
)
def test_junk_selections_for_admin_actions_never_give_a_500(acme_admin_client, some_rows, changelist, action, selected):
    response = acme_admin_client.post(changelist, {"action": action, "_selected_action": [selected], "index": "0"})
    assert response.status_code in (200, 302, 400), response.status_code


@pytest.mark.parametrize("object_id", ["abc", HUGE, "1%00", "-1"])
@pytest.mark.parametrize(
    "page",
    [
        "/admin/vendors/devicemodel/{}/change/",
        "/admin/vendors/devicemodel/{}/upload/",
        "/admin/vendors/devicemodel/{}/export/",
        "/admin/vendors/importjob/{}/change/",
        "/admin/vendors/importjob/{}/status/",
        "/admin/vendors/approvedidentity/{}/history/",
        "/admin/devices/device/{}/change/",
        "/admin/devices/device/{}/force-release/",
        "/admin/devices/activationoperation/{}/change/",
    ],
)
def test_junk_object_ids_in_admin_urls_are_not_found(acme_admin_client, some_rows, page, object_id):
    response = acme_admin_client.get(page.format(object_id))
    assert response.status_code in (302, 404), response.status_code
