from __future__ import annotations

import gc
import os
from typing import Any

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("earshot")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def freeze_startup_objects(**_kwargs: Any) -> None:
    """Keep the objects loaded at start-up shared between the prefork pool's children.

    The children start as copies of the main process that share its memory pages until
    they write to them, and CPython's cyclic collector writes to every object it examines:
    each child's first collections copied most of Django's, Celery's and Earshot's loaded
    modules into pages of its own (about 33 MB more over two children, measured with
    bench/worker_memory.py). `gc.freeze()`, meant for this, moves them out of the
    collector's sight. Runs in the main process, before the pool forks; what every poll
    task needs is loaded first, so that it is shared too.
    """
    _load_what_every_poll_uses()
    gc.collect()
    gc.freeze()


def _load_what_every_poll_uses() -> None:
    """Load, once and shared, what each child would otherwise load for itself on its first
    poll: VADER's lexicon and the X client with tweepy and its OAuth stack."""
    from listening.clients import x  # noqa: F401  (imported for its side effect: loaded)
    from listening.services.sentiment import sentiment_analyzer

    sentiment_analyzer()
