from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from listening.models import PollCursor, TrackedKeyword
from listening.services.polling import keyword_backfill_page, keyword_poll


class Command(BaseCommand):
    help = "Run one polling round now, synchronously, for every active keyword."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--backfill",
            action="store_true",
            help="Then read each new keyword's history (its platform's recent window) to the "
            "end, budget permitting.",
        )

    def handle(self, *args: object, **options: object) -> None:
        keywords = TrackedKeyword.objects.filter(is_active=True).select_related("brand")
        if not keywords:
            self.stdout.write("No active keywords: nothing to poll.")
            return
        for keyword in keywords:
            outcome = keyword_poll(keyword_id=keyword.pk, max_pages=settings.POLL_MAX_PAGES)
            label = f"{keyword.brand.name} · {keyword.query}"
            if outcome.error:
                self.stdout.write(self.style.ERROR(f"{label}: {outcome.error}"))
            elif outcome.rate_limited_until and not outcome.pages:
                self.stdout.write(
                    self.style.WARNING(
                        f"{label}: rate limited, no call before "
                        f"{outcome.rate_limited_until:%Y-%m-%d %H:%M:%S %Z}"
                    )
                )
            else:
                skipped = f", skipped {len(outcome.skipped)} malformed" if outcome.skipped else ""
                self.stdout.write(
                    f"{label}: stored {outcome.stored} new mentions "
                    f"from {outcome.pages} page(s){skipped}"
                )
            if options["backfill"]:
                self._backfill(keyword, label)

    def _backfill(self, keyword: TrackedKeyword, label: str) -> None:
        stored = pages = 0
        while PollCursor.objects.filter(keyword=keyword).exclude(backfill_next_token="").exists():
            before = PollCursor.objects.get(keyword=keyword).backfill_pages
            stored += keyword_backfill_page(keyword_id=keyword.pk)
            if PollCursor.objects.get(keyword=keyword).backfill_pages == before:
                self.stdout.write(self.style.WARNING(f"{label}: history paused (budget or error)"))
                break
            pages += 1
        if pages:
            self.stdout.write(f"{label}: history: {stored} new mentions from {pages} page(s)")
