from django.contrib import admin
from django.urls import include, path

from .customer_api import api as customer_api
from .openapi import openapi_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("alerts.urls")),
    path("accounts/", include("accounts.urls")),
    path("", include("apitokens.urls")),
    path("accounts/passkeys/", include("django_otp_webauthn.urls", namespace="otp_webauthn")),
    path("", include("spaces.urls")),
    path("", include("devices.urls")),
    path("", include("releaserequests.urls")),
    path("", include("webhooks.urls")),
    path("api/v1/openapi.json", openapi_view, name="openapi"),
    path("api/v1/org/", customer_api.urls),
    path("api/v1/", include("devices.api_urls")),
]
