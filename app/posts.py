"""Writing and reading posts: the data the export, search and digest tasks work on."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import Post, User

MAX_LENGTH = 280


class PostInvalid(ValueError):
    pass


def write_post(user: User, body: object) -> Post:
    if not isinstance(body, str) or not body.strip():
        raise PostInvalid("body is required")
    if len(body) > MAX_LENGTH:
        raise PostInvalid(f"body must be at most {MAX_LENGTH} characters")
    post = Post(body=body.strip(), user_id=user.id)
    db.session.add(post)
    db.session.commit()
    return post


def user_posts(user_id: int, limit: int = 100) -> list[Post]:
    return list(
        db.session.scalars(
            select(Post)
            .where(Post.user_id == user_id)
            .order_by(Post.created_at.desc(), Post.id.desc())
            .limit(limit)
        )
    )
