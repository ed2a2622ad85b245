from django.contrib.auth import views as auth_views
from django.urls import path

from . import security_views, views

urlpatterns = [
    path("login/", security_views.SignInView.as_view(), name="login"),
    path("login/code/", security_views.SecondStepView.as_view(), name="two-factor-code"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("security/", security_views.AccountSecurityView.as_view(), name="account"),
    path("two-factor/setup/", security_views.AuthenticatorSetupView.as_view(), name="two-factor-setup"),
    path("two-factor/recovery-codes/", security_views.RecoveryCodesView.as_view(), name="recovery-codes"),
    path("two-factor/turn-off/", security_views.TurnOffTwoFactorView.as_view(), name="two-factor-turn-off"),
    path("passkeys/<int:pk>/rename/", security_views.PasskeyRenameView.as_view(), name="passkey-rename"),
    path("passkeys/<int:pk>/remove/", security_views.PasskeyRemoveView.as_view(), name="passkey-remove"),
    path("sessions/others/end/", security_views.OtherSessionsEndView.as_view(), name="sessions-end-others"),
    path("sessions/<str:reference>/end/", security_views.SessionEndView.as_view(), name="session-end"),
    path("password/change/", security_views.PasswordChangeView.as_view(), name="password_change"),
    path("password/change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("password/reset/", auth_views.PasswordResetView.as_view(), name="password_reset"),
    path("password/reset/sent/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "password/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path("password/reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("invitations/<str:token>/", views.InvitationAcceptView.as_view(), name="invitation-accept"),
    path("o/<uuid:code>/members/", views.MembersView.as_view(), name="members"),
    path("o/<uuid:code>/members/<int:pk>/role/", views.ChangeRoleView.as_view(), name="member-role"),
    path("o/<uuid:code>/members/<int:pk>/remove/", views.RemoveMemberView.as_view(), name="member-remove"),
    path(
        "o/<uuid:code>/invitations/<int:pk>/withdraw/",
        views.WithdrawInvitationView.as_view(),
        name="invitation-withdraw",
    ),
    path("o/<uuid:code>/leave/", views.LeaveOrganizationView.as_view(), name="organization-leave"),
    path("o/<uuid:code>/two-factor/", views.TwoFactorPolicyView.as_view(), name="two-factor-policy"),
    path("o/<uuid:code>/audit/", views.AuditLogView.as_view(), name="audit-log"),
    path("o/<uuid:code>/audit.csv", views.AuditLogCsvView.as_view(), name="audit-log-csv"),
]
