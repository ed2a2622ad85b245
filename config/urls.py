from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("alerts.urls")),
    path("accounts/", include("accounts.urls")),
    path("", include("spaces.urls")),
    path("", include("devices.urls")),
    path("api/v1/", include("devices.api_urls")),
]
