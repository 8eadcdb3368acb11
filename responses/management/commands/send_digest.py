from __future__ import annotations

from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from responses.models import AlertDeliveryStatus
from responses.services.alerts import alert_delivery_send
from responses.services.analytics import Period
from responses.services.digest import (
    DigestHasNoRecipients,
    digest_create,
    digest_figures,
    digest_text,
    last_week,
    week_of,
)


class Command(BaseCommand):
    help = (
        "E-mail last week's digest to the supervisors now (once per week: a digest already "
        "made is not made again, only its unsent e-mail is tried again)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--week",
            metavar="YYYY-MM-DD",
            help="any day of the week to sum up (Monday to Sunday); default: last week",
        )
        parser.add_argument(
            "--print",
            action="store_true",
            dest="print_only",
            help="print the digest and send nothing",
        )

    def handle(self, *args: object, week: str | None = None, print_only: bool = False,
               **options: object) -> None:  # fmt: skip
        period = self._week(week)
        if print_only:
            self.stdout.write(digest_text(digest_figures(period=period)))
            return
        try:
            result = digest_create(period=period)
        except DigestHasNoRecipients as refusal:
            raise CommandError(str(refusal)) from refusal
        alert = result.alert
        if not result.created:
            made = timezone.localtime(alert.created_at)
            self.stdout.write(f"This week's digest was made on {made:%-d %b %Y at %H:%M}.")
        for delivery in alert.deliveries.all():
            if delivery.status == AlertDeliveryStatus.SENT:
                self.stdout.write(f"Already sent to {delivery.target}: {alert.subject}")
                continue
            outcome = alert_delivery_send(delivery_id=delivery.pk, retry_now=True)
            if outcome is None:
                self.stdout.write("Being sent by a worker right now.")
            elif outcome.delivered:
                self.stdout.write(
                    self.style.SUCCESS(f"Sent to {outcome.delivery.target}: {alert.subject}")
                )
            else:
                raise CommandError(
                    f"Not sent: {outcome.delivery.last_error}. It will be tried again later."
                )

    def _week(self, week: str | None) -> Period:
        if not week:
            return last_week(timezone.now())
        try:
            return week_of(date.fromisoformat(week))
        except ValueError as exc:
            raise CommandError(f"--week takes a date such as 2026-11-02, not {week!r}.") from exc
