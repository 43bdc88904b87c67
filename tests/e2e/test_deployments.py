"""Two deployments on one Redis server (staging beside production): each pushes only its own events.

Each runs its own web node, worker and database on its own database number of one private
redis-server, with every other name left at its default, and each has a user with the same id.
Pub/sub ignores database numbers: a channel named the same in both would carry each one's
events to the other's sockets.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from tests.e2e.conftest import LiveStack, running_stack, stack_env
from tests.e2e.test_resume import Recorder
from tests.support import start_redis_server

pytestmark = pytest.mark.e2e


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[str]:
    """A private redis-server's address, without a database number: the test picks them."""
    proc, url = start_redis_server(tmp_path)
    try:
        yield url.rsplit("/", 1)[0]
    finally:
        proc.stop()


@pytest.fixture
def deployments(
    request: pytest.FixtureRequest, tmp_path: Path, database_url: str, redis_server: str
) -> Iterator[list[LiveStack]]:
    # The finding is about Redis: the second deployment's database is a SQLite file of its own
    # whichever database the suite runs on.
    databases = [database_url, f"sqlite:///{tmp_path / 'other.db'}"]
    with contextlib.ExitStack() as running:
        stacks = []
        for number, database in enumerate(databases):
            home = tmp_path / f"deployment-{number}"
            home.mkdir()
            url = f"{redis_server}/{number}"
            env = stack_env(database, url, f"deployment-{number}-secret", home / "results")
            # What an operator would leave alone: the queue (and so every name) at its default.
            env.pop("TASK_QUEUE", None)
            redis = running.enter_context(Redis.from_url(url))
            stacks.append(running.enter_context(running_stack(request, env, redis, home)))
        yield stacks


def finished(task_id: str):
    return lambda name, data: (
        name == "task_progress" and data["task_id"] == task_id and data["status"] == "succeeded"
    )


def welcomed(name: str, _data: dict) -> bool:
    return name == "welcome"


def test_deployments_on_one_redis_server_never_push_each_others_events(deployments):
    production, staging = deployments
    clients: list[Recorder] = []
    try:
        tokens = [stack.create_user("alice") for stack in deployments]
        for stack, token in zip(deployments, tokens, strict=True):
            clients.append(Recorder(stack.base_url, {"token": token}))
        prod, stage = clients
        heard = [prod.until(welcomed), stage.until(welcomed)]
        assert heard[0][-1][1]["user_id"] == heard[1][-1][1]["user_id"], "one user id in both"

        # One deployment's task, then the other's, then the first's again: each socket hears
        # what its node heard in the order Redis published it, so a crossed event arrives
        # before the task that follows it has finished.
        first = production.start_task(tokens[0], "example_long_task", steps=10, delay=0.02)["id"]
        heard[0] += prod.until(finished(first))
        second = staging.start_task(tokens[1], "example_long_task", steps=10, delay=0.02)["id"]
        heard[1] += stage.until(finished(second))
        third = production.start_task(tokens[0], "example_long_task", steps=10, delay=0.02)["id"]
        heard[0] += prod.until(finished(third))
    finally:
        for client in clients:
            client.sio.disconnect()

    def tasks(events: list[tuple[str, dict]]) -> set[str]:
        return {data["task_id"] for name, data in events if name == "task_progress"}

    assert tasks(heard[1]) == {second}, "staging's user heard only staging's task"
    assert tasks(heard[0]) == {first, third}, "production's user heard only production's tasks"
