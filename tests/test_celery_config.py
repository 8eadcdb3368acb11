"""The worker's start-up hook: objects loaded before the pool forks stay shared."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from celery.signals import worker_init

from config.celery import freeze_startup_objects


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the test run collects as usual


def test_worker_start_freezes_what_is_loaded(unfrozen: None) -> None:
    assert gc.get_freeze_count() == 0

    worker_init.send(sender=None)

    assert gc.get_freeze_count() > 0


def test_it_is_connected_to_the_worker_init_signal() -> None:
    receivers = [receiver() for _key, receiver in worker_init.receivers]
    assert freeze_startup_objects in receivers
