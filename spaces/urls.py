from django.urls import path

from . import views

urlpatterns = [
    path("", views.HomeView.as_view(), name="home"),
    path("o/<uuid:code>/", views.OrganizationOverviewView.as_view(), name="organization-overview"),
    path("spaces/<uuid:code>/", views.SpaceDashboardView.as_view(), name="space-dashboard"),
]
