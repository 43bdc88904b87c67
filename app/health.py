"""Readiness: can this web node do its job right now?"""

from __future__ import annotations

from typing import Any

from redis.exceptions import RedisError
from rq import Worker
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import broker, db


def readiness() -> dict[str, dict[str, Any]]:
    checks: dict[str, dict[str, Any]] = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = {"ok": True}
    except SQLAlchemyError as exc:
        checks["database"] = {"ok": False, "error": type(exc).__name__}
    try:
        broker.redis.ping()
        workers = Worker.count(queue=broker.queue)
        checks["redis"] = {"ok": True}
        checks["workers"] = {"ok": workers > 0, "count": workers}
    except RedisError as exc:
        checks["redis"] = {"ok": False, "error": type(exc).__name__}
        checks["workers"] = {"ok": False, "error": "unknown while Redis is unreachable"}
    return checks
