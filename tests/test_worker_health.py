import socket

from rq import Queue

from app.broker import SERIALIZER
from worker import health
from worker.app_worker import AppWorker


def test_health_check_passes_only_with_a_worker_from_this_host(app, redis, monkeypatch):
    monkeypatch.setenv("REDIS_URL", app.config["REDIS_URL"])
    monkeypatch.setenv("TASK_QUEUE", app.config["TASK_QUEUE"])
    assert health.main() == 1
    queue = Queue(app.config["TASK_QUEUE"], connection=redis, serializer=SERIALIZER)
    worker = AppWorker([queue], connection=redis, serializer=SERIALIZER, app=app)
    worker.register_birth()
    try:
        assert worker.hostname == socket.gethostname()
        assert health.main() == 0
    finally:
        worker.register_death()


def test_health_check_fails_when_redis_is_unreachable(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    assert health.main() == 1
