from django.urls import path

from . import views

urlpatterns = [
    path("spaces/<uuid:code>/claim/", views.ClaimDeviceWizardView.as_view(), name="claim-device"),
]
