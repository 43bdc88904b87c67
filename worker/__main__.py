"""``python -m worker``: an RQ worker for the app's task queue, configured like the web app."""

from __future__ import annotations

import logging

from app import create_app
from app.broker import SERIALIZER
from worker.app_worker import AppWorker


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = create_app()
    state = app.extensions["broker"]
    worker = AppWorker([state.queue], connection=state.redis, serializer=SERIALIZER, app=app)
    worker.work(with_scheduler=True)


if __name__ == "__main__":
    main()
