from django.urls import path

from listening.models import MentionStatus
from responses import (
    alert_views,
    approval_views,
    audit_views,
    people_views,
    queue_views,
    report_views,
    views,
)

app_name = "responses"
urlpatterns = [
    path("queue/", views.queue, name="queue"),
    path("queue/claim-next/", views.claim_next_view, name="claim-next"),
    path("queue/bulk/", queue_views.bulk_action_view, name="bulk"),
    path("queue/views/", queue_views.saved_view_create_view, name="saved-view-create"),
    path(
        "queue/views/<int:view_id>/delete/",
        queue_views.saved_view_delete_view,
        name="saved-view-delete",
    ),
    path("mentions/<int:mention_id>/", views.mention_detail, name="mention"),
    path("mentions/<int:mention_id>/claim/", views.mention_claim_view, name="claim"),
    path("mentions/<int:mention_id>/release/", views.mention_release_view, name="release"),
    path("mentions/<int:mention_id>/assign/", views.mention_assign_view, name="assign"),
    path("mentions/<int:mention_id>/presence/", views.mention_presence_view, name="presence"),
    path(
        "mentions/<int:mention_id>/no-reply/",
        views.mention_close_view,
        {"outcome": MentionStatus.NO_REPLY_NEEDED},
        name="no-reply",
    ),
    path(
        "mentions/<int:mention_id>/spam/",
        views.mention_close_view,
        {"outcome": MentionStatus.SPAM},
        name="spam",
    ),
    path(
        "mentions/<int:mention_id>/resolve/",
        views.mention_close_view,
        {"outcome": MentionStatus.RESOLVED},
        name="resolve",
    ),
    path("mentions/<int:mention_id>/reply/", views.reply_send_view, name="reply"),
    path("mentions/<int:mention_id>/handled/", views.mention_handled_view, name="handled"),
    path("mentions/<int:mention_id>/private/", views.mention_take_private_view, name="private"),
    path("approvals/", approval_views.approvals, name="approvals"),
    path("replies/<int:reply_id>/approve/", approval_views.reply_approve_view, name="approve"),
    path("replies/<int:reply_id>/send-back/", approval_views.reply_return_view, name="send-back"),
    path(
        "mentions/<int:mention_id>/customer/tags/<str:tag>/add/",
        views.customer_tag_add_view,
        name="customer-tag-add",
    ),
    path(
        "mentions/<int:mention_id>/customer/tags/<str:tag>/remove/",
        views.customer_tag_remove_view,
        name="customer-tag-remove",
    ),
    path("replies/<int:reply_id>/undo/", views.reply_undo_view, name="undo"),
    path("report/", report_views.report, name="report"),
    path("report/mentions.csv", report_views.report_csv, name="report-csv"),
    path("report/definitions/", report_views.report_definitions, name="report-definitions"),
    path("alerts/", alert_views.alerts, name="alerts"),
    path("audit/", audit_views.audit_log, name="audit"),
    path("people/", people_views.people, name="people"),
    path("people/invite/", people_views.invite_create_view, name="invite"),
    path(
        "people/invites/<int:invite_id>/revoke/",
        people_views.invite_revoke_view,
        name="invite-revoke",
    ),
    path("people/<int:user_id>/", people_views.user_edit, name="person"),
    path(
        "people/<int:user_id>/deactivate/",
        people_views.user_deactivate_view,
        name="person-deactivate",
    ),
    path(
        "people/<int:user_id>/reactivate/",
        people_views.user_reactivate_view,
        name="person-reactivate",
    ),
    path("people/teams/", people_views.team_create_view, name="team-create"),
    path("people/teams/<int:team_id>/", people_views.team_edit, name="team"),
]
