"""Two deployments on one Redis server (staging beside production): each pushes only its own events.

Each runs its own web node, worker and database on its own database number of one private
redis-server, with every other name left at its default, and each has a user with the same id.
Pub/sub ignores database numbers: a channel named the same in both would carry each one's
events to the other's sockets.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
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


@dataclass
class Member:
    token: str
    client: Recorder
    heard: list[tuple[str, dict]]

    @property
    def user_id(self) -> int:
        return self.heard[0][1]["user_id"]


def join(stack: LiveStack, username: str) -> Member:
    token = stack.create_user(username)
    client = Recorder(stack.base_url, {"token": token})
    return Member(token, client, client.until(lambda name, _: name == "welcome"))


def same_user_id(deployments: list[LiveStack], members: list[Member]) -> None:
    """Register users where the id is behind until both have one user of the same id.

    Ids start apart on PostgreSQL, whose sequences a rolled-back insert still advances.
    """
    for n in range(1, 10):
        if members[0].user_id == members[1].user_id:
            return
        behind = 0 if members[0].user_id < members[1].user_id else 1
        members[behind].client.sio.disconnect()
        members[behind] = join(deployments[behind], f"alice{n}")
    raise AssertionError(f"no common user id: {[m.user_id for m in members]}")


def test_deployments_on_one_redis_server_never_push_each_others_events(deployments):
    production, staging = deployments
    members: list[Member] = []
    try:
        for stack in deployments:
            members.append(join(stack, "alice"))
        same_user_id(deployments, members)
        prod, stage = members

        # One deployment's task, then the other's, then the first's again: each socket hears
        # what its node heard in the order Redis published it, so a crossed event arrives
        # before the task that follows it has finished.
        first = production.start_task(prod.token, "example_long_task", steps=10, delay=0.02)["id"]
        prod.heard += prod.client.until(finished(first))
        second = staging.start_task(stage.token, "example_long_task", steps=10, delay=0.02)["id"]
        stage.heard += stage.client.until(finished(second))
        third = production.start_task(prod.token, "example_long_task", steps=10, delay=0.02)["id"]
        prod.heard += prod.client.until(finished(third))
    finally:
        for member in members:
            member.client.sio.disconnect()

    def tasks(member: Member) -> set[str]:
        return {data["task_id"] for name, data in member.heard if name == "task_progress"}

    assert tasks(stage) == {second}, "staging's user heard only staging's task"
    assert tasks(prod) == {first, third}, "production's user heard only production's tasks"
