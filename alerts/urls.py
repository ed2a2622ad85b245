from django.urls import path

from . import views

urlpatterns = [
    path("accounts/alerts/", views.AlertPreferencesView.as_view(), name="alert-preferences"),
    path("alerts/unsubscribe/<str:token>/", views.UnsubscribeView.as_view(), name="alert-unsubscribe"),
]
