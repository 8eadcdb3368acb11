from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from listening.services.credentials import credentials_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored source and brand credential with the first key: after putting "
        "a new key first in FIELD_ENCRYPTION_KEYS (or a new SECRET_KEY, the old one in "
        "SECRET_KEY_FALLBACKS). Then the old key can be removed."
    )

    def handle(self, *args: object, **options: object) -> None:
        outcome = credentials_rotate()
        self.stdout.write(
            f"{outcome.rotated} credential value(s) re-encrypted with the first key"
            + (
                f", {outcome.encrypted} found in plaintext and encrypted"
                if outcome.encrypted
                else ""
            )
            + "."
        )
        if outcome.unreadable:
            raise CommandError(
                f"{len(outcome.unreadable)} value(s) open with no configured key and were left "
                f"as they were: {'; '.join(outcome.unreadable)}. Add the key they were written "
                "with to FIELD_ENCRYPTION_KEYS (or SECRET_KEY_FALLBACKS) and run this again, "
                "or set them anew in Admin. Keep the old key until then."
            )
        self.stdout.write(self.style.SUCCESS("Every credential opens with the first key now."))
