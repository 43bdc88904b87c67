from rq import Queue

from app.broker import SERIALIZER
from worker.app_worker import AppWorker


def test_healthz(client):
    assert client.get("/healthz").json == {"status": "ok"}


def test_not_ready_without_a_worker(client):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["database"] == {"ok": True}
    assert response.json["checks"]["redis"] == {"ok": True}
    assert response.json["checks"]["workers"] == {"ok": False, "count": 0}


def test_ready_with_a_registered_worker(app, client, redis):
    queue = Queue(app.config["TASK_QUEUE"], connection=redis, serializer=SERIALIZER)
    worker = AppWorker([queue], connection=redis, serializer=SERIALIZER, app=app)
    worker.register_birth()
    try:
        response = client.get("/readyz")
        assert response.status_code == 200
        assert response.json["status"] == "ready"
        assert response.json["checks"]["workers"] == {"ok": True, "count": 1}
    finally:
        worker.register_death()


def test_not_ready_when_redis_is_unreachable(make_app):
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["redis"]["ok"] is False
