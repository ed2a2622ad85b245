from django.urls import path

from . import manage_views, views

urlpatterns = [
    path("", views.HomeView.as_view(), name="home"),
    path("o/<uuid:code>/", views.OrganizationOverviewView.as_view(), name="organization-overview"),
    path("o/<uuid:code>/devices/", views.OrganizationDevicesView.as_view(), name="organization-devices"),
    path("o/<uuid:code>/devices.csv", views.OrganizationDevicesCsvView.as_view(), name="organization-devices-csv"),
    path("spaces/<uuid:code>/", views.SpaceDashboardView.as_view(), name="space-dashboard"),
    # Space management.
    path("o/<uuid:code>/spaces/new/", manage_views.SpaceCreateView.as_view(), name="space-create"),
    path("spaces/<uuid:code>/settings/", manage_views.SpaceSettingsView.as_view(), name="space-settings"),
    path("spaces/<uuid:code>/delete/", manage_views.SpaceDeleteView.as_view(), name="space-delete"),
]
