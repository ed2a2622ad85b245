from django.contrib import admin
from django.urls import include, path

from .customer_api import api as customer_api

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("alerts.urls")),
    path("accounts/", include("accounts.urls")),
    path("accounts/passkeys/", include("django_otp_webauthn.urls", namespace="otp_webauthn")),
    path("", include("spaces.urls")),
    path("", include("devices.urls")),
    path("api/v1/org/", customer_api.urls),
    path("api/v1/", include("devices.api_urls")),
]
