"""Export the owner's posts as JSON and CSV, packed into one zip file to download."""

from __future__ import annotations

import csv
import json
import os
import tempfile
import zipfile
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, func, select

from app.extensions import db
from app.models import Post

if TYPE_CHECKING:
    from app.tasks.runtime import TaskContext

FILENAME = "posts-export.zip"
CSV_COLUMNS = ("id", "body", "created_at")
# Rows fetched from the database per round trip; bounds the memory one export holds.
BATCH = 500


def export_posts(ctx: TaskContext) -> dict[str, Any]:
    total = db.session.scalar(select(func.count()).select_from(Post).where(Post.user_id == ctx.user_id)) or 0
    ctx.report(0, total, f"Exporting {total} posts")
    target = ctx.result_path(FILENAME)
    # Everything half-written lives in a scratch directory beside the result, so the final
    # rename is atomic and a failure or cancel (which removes the task's directory) leaves nothing.
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".building-") as scratch:
        work = Path(scratch)
        exported = 0
        with (
            # Read on a connection of its own: every ctx.report() commits the session, and that
            # commit would close a server-side cursor (PostgreSQL) opened in it after one batch.
            db.engine.connect() as reader,
            (work / "posts.json").open("w", encoding="utf-8") as json_file,
            (work / "posts.csv").open("w", encoding="utf-8", newline="") as csv_file,
        ):
            rows = reader.execution_options(yield_per=BATCH).execute(_oldest_first(ctx.user_id, total))
            writer = csv.writer(csv_file)
            writer.writerow(CSV_COLUMNS)
            json_file.write("[")
            for exported, (post_id, body, created_at) in enumerate(rows, start=1):
                record = {"id": post_id, "body": body, "created_at": created_at.isoformat()}
                json_file.write(("\n" if exported == 1 else ",\n") + json.dumps(record, ensure_ascii=False))
                writer.writerow((post_id, body, record["created_at"]))
                ctx.report(exported, total, f"Exported {exported} of {total} posts")
            json_file.write("\n]\n" if exported else "]\n")
        partial = work / FILENAME
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.write(work / "posts.json", "posts.json")
            archive.write(work / "posts.csv", "posts.csv")
        os.replace(partial, target)
    return {"posts": exported, "file": FILENAME, "bytes": target.stat().st_size}


def _oldest_first(user_id: int, limit: int) -> Select[int, str, datetime]:
    # The limit keeps posts written after the count out, so the step never passes the total.
    return (
        select(Post.id, Post.body, Post.created_at)
        .where(Post.user_id == user_id)
        .order_by(Post.created_at, Post.id)
        .limit(limit)
    )
