from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from listening.models import TrackedKeyword
from listening.services.polling import keyword_poll


class Command(BaseCommand):
    help = "Run one polling round now, synchronously, for every active keyword."

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
