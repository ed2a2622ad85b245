from django.urls import path

from . import views

urlpatterns = [
    path("o/<uuid:code>/api-tokens/", views.ApiTokensView.as_view(), name="api-tokens"),
    path("o/<uuid:code>/api-tokens/<uuid:token>/revoke/", views.RevokeApiTokenView.as_view(), name="api-token-revoke"),
]
