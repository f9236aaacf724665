"""The web and the worker freeze what they loaded, so full garbage collections skip it (config/startup.py)."""

import gc

import pytest

from config import celery as celery_config
from config import gunicorn as gunicorn_config
from config.startup import freeze_loaded


@pytest.fixture
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_freezing_moves_what_exists_out_of_the_collections(unfrozen):
    loaded = [object() for _ in range(3)]  # noqa: F841  (alive while frozen)
    assert gc.get_freeze_count() == 0
    assert len(gc.get_objects()) > 1000
    assert freeze_loaded() > 1000
    assert len(gc.get_objects()) < 100  # what a full collection still walks: only what came since


def test_a_gunicorn_worker_freezes_once_it_loaded_the_application(unfrozen):
    gunicorn_config.post_worker_init(worker=None)
    assert gc.get_freeze_count() > 0


def test_the_celery_worker_freezes_before_forking_and_each_pool_process_after(unfrozen):
    celery_config.freeze_loaded_before_fork()
    frozen = gc.get_freeze_count()
    assert frozen > 0
    gc.unfreeze()
    celery_config.freeze_inherited()
    assert gc.get_freeze_count() > 0
