from __future__ import annotations

from django.core.management.base import BaseCommand

from responses.services.demo import DEMO_BRAND, DEMO_QUERIES, DEMO_SOURCES, demo_seed


class Command(BaseCommand):
    help = "Create the demo users (new passwords each run), brand and tracked keywords."

    def handle(self, *args: object, **options: object) -> None:
        users = demo_seed()
        self.stdout.write(self.style.SUCCESS("Demo users (passwords are new on every run):"))
        for user in users:
            self.stdout.write(
                f"  {user.role:<11} login: {user.username:<11} password: {user.password}"
            )
        self.stdout.write(
            f"Demo brand {DEMO_BRAND!r} listening on X for: {', '.join(DEMO_QUERIES)}; and on "
            + ", ".join(f"{name} for {query}" for _, name, _, _, _, query in DEMO_SOURCES)
        )
