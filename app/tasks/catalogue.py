"""Every task a user can start, with its parameters and limits, declared in one place.

The API (``GET /api/task-types``), parameter validation and the page's start forms all
read this. A task function takes a ``TaskContext`` and its parameters as keywords, and
returns a JSON-serialisable result.
"""

from __future__ import annotations

from app.sansio.params import Param
from app.tasks import demo, emails, export, primes, search
from app.tasks.types import TaskType

CATALOGUE: dict[str, TaskType] = {
    t.name: t
    for t in (
        TaskType(
            name="export_posts",
            title="Export my posts",
            description="Writes all your posts as JSON and CSV into a zip file to download.",
            func=export.export_posts,
            params=(),
            timeout=10 * 60,
        ),
        TaskType(
            name="reindex_search",
            title="Rebuild the search index",
            description="Rebuilds the full-text index that the search page uses, over all posts.",
            func=search.reindex_search,
            params=(),
            timeout=30 * 60,
        ),
        TaskType(
            name="send_batch_emails",
            title="E-mail a digest",
            description=(
                "E-mails a digest of recent posts to you; an operator may name other users "
                "(or leave the names empty for every confirmed address)."
            ),
            func=emails.send_batch_emails,
            params=(
                Param("recipients", list, default=[], minimum=0, maximum=100, help="Usernames"),
                Param("days", int, default=7, minimum=1, maximum=30, help="Days of posts"),
            ),
            timeout=15 * 60,
            # Retried only when the mail server cannot be reached at all.
            retry_intervals=(3, 15),
            admit=emails.admit_digest,
        ),
        TaskType(
            name="compute_primes",
            title="Count primes",
            description="Counts the primes below a limit with a segmented sieve.",
            func=primes.compute_primes,
            params=(
                Param("limit", int, default=200_000_000, minimum=10, maximum=3_000_000_000, help="Below"),
            ),
            timeout=10 * 60,
        ),
        TaskType(
            name="example_long_task",
            title="Demo: count steps",
            description="Counts steps with a pause between each, reporting every one.",
            func=demo.example_long_task,
            params=(
                Param("steps", int, default=10, minimum=1, maximum=100, help="How many steps"),
                Param("delay", float, default=1.0, minimum=0.0, maximum=5.0, help="Seconds per step"),
            ),
            timeout=15 * 60,
            concurrent_per_user=3,
        ),
    )
}
