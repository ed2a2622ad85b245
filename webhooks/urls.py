from django.urls import path

from . import views

urlpatterns = [
    path("o/<uuid:code>/webhooks/", views.WebhooksView.as_view(), name="webhooks"),
    path("o/<uuid:code>/webhooks/<uuid:endpoint>/change/", views.ChangeEndpointView.as_view(), name="webhook-change"),
    path("o/<uuid:code>/webhooks/<uuid:endpoint>/secret/", views.RollSecretView.as_view(), name="webhook-roll-secret"),
    path("o/<uuid:code>/webhooks/<uuid:endpoint>/ping/", views.PingView.as_view(), name="webhook-ping"),
    path("o/<uuid:code>/webhooks/<uuid:endpoint>/remove/", views.RemoveEndpointView.as_view(), name="webhook-remove"),
    path(
        "o/<uuid:code>/webhooks/deliveries/<uuid:delivery>/resend/",
        views.ResendDeliveryView.as_view(),
        name="webhook-resend",
    ),
]
