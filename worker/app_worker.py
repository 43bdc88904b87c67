from __future__ import annotations

from typing import Any

from flask import Flask
from rq import Queue, Worker
from rq.executions import Execution
from rq.job import Job


class AppWorker(Worker):
    """An RQ worker that runs every job inside a fresh application context.

    The context is pushed in the work horse, per job, so each job gets its own database
    session and nothing is shared across jobs or pushed at import time.
    """

    def __init__(self, *args: Any, app: Flask, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.app = app

    def perform_job(self, job: Job, queue: Queue, execution: Execution) -> bool:
        with self.app.app_context():
            return super().perform_job(job, queue, execution)
