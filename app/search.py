"""Full-text search over posts, on SQLite (FTS5) or PostgreSQL (tsvector + GIN), behind one interface.

The index is a runtime artefact, not part of the migrated schema: ``rebuild`` fills a new table
beside the live one and renames it into place in one transaction, so searches keep answering
from the old index until the new one is complete. Posts written since the last rebuild are not
found until the next one. Alembic ignores every table whose name starts with ``TABLE_PREFIX``.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import REGCONFIG
from sqlalchemy.engine import Connection
from sqlalchemy.orm import joinedload

from app.extensions import db
from app.models import Post
from app.sansio.fulltext import fts5_match, terms, tsquery_text

TABLE_PREFIX = "search_index"
INDEX_TABLE = TABLE_PREFIX
BUILD_TABLE = f"{TABLE_PREFIX}_build"
BATCH_SIZE = 500
SWAP_ATTEMPTS = 10
SWAP_PAUSE = 0.5

Progress = Callable[[int, int], None]


class IndexMissing(LookupError):
    """No search index has been built yet: the ``reindex_search`` task builds it."""


class _Backend(ABC):
    """The dialect-specific SQL; ``rebuild`` and ``search`` below hold the shared procedure."""

    @abstractmethod
    def create(self, conn: Connection, table: str) -> None: ...

    @abstractmethod
    def fill(self, conn: Connection, table: str, after: int, upto: int) -> None:
        """Index the posts with ``after < id <= upto``."""

    @abstractmethod
    def finish(self, conn: Connection, table: str) -> None:
        """Work that is cheaper once all rows are in."""

    @abstractmethod
    def swap(self, conn: Connection) -> None:
        """Replace the live index with the build table, atomically; the caller commits."""

    def lock_busy(self, exc: sa.exc.DBAPIError) -> bool:
        """Whether the swap failed only because a reader held the live index too long."""
        return False

    def drop(self, conn: Connection, table: str) -> None:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")

    @abstractmethod
    def ranked(self, stmt: sa.Select[Any], words: list[str]) -> sa.Select[Any]:
        """``stmt`` (a select of posts) narrowed to the matches, best first."""


class _Sqlite(_Backend):
    # Contentless: the posts table already holds the text, the index needs only its tokens.
    # The rowid is the post id. Porter stems English much as PostgreSQL's 'english' configuration does.
    def create(self, conn: Connection, table: str) -> None:
        conn.exec_driver_sql(
            f"CREATE VIRTUAL TABLE {table} USING fts5("
            "body, content='', tokenize='porter unicode61 remove_diacritics 2')"
        )

    def fill(self, conn: Connection, table: str, after: int, upto: int) -> None:
        conn.execute(
            sa.text(
                f"INSERT INTO {table} (rowid, body)"  # noqa: S608 -- table is ours
                " SELECT id, body FROM posts WHERE id > :a AND id <= :b"
            ),
            {"a": after, "b": upto},
        )

    def finish(self, conn: Connection, table: str) -> None:
        # Merges the segments that batch inserts leave behind, so queries read one b-tree.
        conn.exec_driver_sql(f"INSERT INTO {table} ({table}) VALUES ('optimize')")  # noqa: S608 -- table is ours

    def swap(self, conn: Connection) -> None:
        # pysqlite runs DDL outside any transaction unless one is open: open it ourselves, and
        # IMMEDIATE so that two swaps cannot interleave. FTS5 renames its shadow tables too.
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {INDEX_TABLE}")
        conn.exec_driver_sql(f"ALTER TABLE {BUILD_TABLE} RENAME TO {INDEX_TABLE}")

    def ranked(self, stmt: sa.Select[Any], words: list[str]) -> sa.Select[Any]:
        fts = sa.table(INDEX_TABLE, sa.column("rowid"))
        whole = sa.literal_column(INDEX_TABLE)
        return (
            stmt.join(fts, fts.c.rowid == Post.id)
            .where(whole.bool_op("MATCH")(fts5_match(words)))
            .order_by(sa.func.bm25(whole), Post.id.desc())
        )


class _Postgres(_Backend):
    CONFIG = "english"

    def create(self, conn: Connection, table: str) -> None:
        # Constraint and index names carry the table's name, so the swap renames them as well:
        # the next build needs the build names free.
        conn.exec_driver_sql(
            f"CREATE TABLE {table} (post_id integer NOT NULL, tsv tsvector NOT NULL,"
            f" CONSTRAINT {table}_pkey PRIMARY KEY (post_id))"
        )

    def fill(self, conn: Connection, table: str, after: int, upto: int) -> None:
        conn.execute(
            sa.text(
                f"INSERT INTO {table} (post_id, tsv)"  # noqa: S608 -- table is ours
                " SELECT id, to_tsvector(CAST(:config AS regconfig), body) FROM posts WHERE id > :a AND id <= :b"
            ),
            {"config": self.CONFIG, "a": after, "b": upto},
        )

    def finish(self, conn: Connection, table: str) -> None:
        # A GIN index is built far faster in one pass than row by row.
        conn.exec_driver_sql(f"CREATE INDEX {table}_tsv ON {table} USING gin (tsv)")

    def swap(self, conn: Connection) -> None:
        # DROP waits for every open transaction that read the index, and each search that
        # arrives meanwhile queues behind it: give up soon and try again rather than stall them.
        conn.exec_driver_sql("SET LOCAL lock_timeout = '1s'")
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {INDEX_TABLE}")
        conn.exec_driver_sql(f"ALTER TABLE {BUILD_TABLE} RENAME TO {INDEX_TABLE}")
        for suffix in ("pkey", "tsv"):
            conn.exec_driver_sql(f"ALTER INDEX {BUILD_TABLE}_{suffix} RENAME TO {INDEX_TABLE}_{suffix}")

    def lock_busy(self, exc: sa.exc.DBAPIError) -> bool:
        return getattr(exc.orig, "sqlstate", None) == "55P03"  # lock_not_available

    def ranked(self, stmt: sa.Select[Any], words: list[str]) -> sa.Select[Any]:
        index = sa.table(INDEX_TABLE, sa.column("post_id"), sa.column("tsv"))
        query = sa.func.plainto_tsquery(sa.cast(self.CONFIG, REGCONFIG), tsquery_text(words))
        return (
            stmt.join(index, index.c.post_id == Post.id)
            .where(index.c.tsv.bool_op("@@")(query))
            .order_by(sa.func.ts_rank(index.c.tsv, query).desc(), Post.id.desc())
        )


_BACKENDS: dict[str, type[_Backend]] = {"sqlite": _Sqlite, "postgresql": _Postgres}


def _backend() -> _Backend:
    name = db.engine.dialect.name
    if name not in _BACKENDS:
        raise RuntimeError(f"full-text search is not implemented for {name}")
    return _BACKENDS[name]()


def index_built() -> bool:
    return sa.inspect(db.session.connection()).has_table(INDEX_TABLE)


def search(query: str, limit: int = 20, offset: int = 0) -> list[Post]:
    """Posts containing every word of ``query``, best match first; raises ``IndexMissing``."""
    if not index_built():
        raise IndexMissing("the search index has not been built yet")
    words = terms(query)
    if not words:
        return []
    stmt = _backend().ranked(sa.select(Post).options(joinedload(Post.author)), words)
    return list(db.session.scalars(stmt.limit(limit).offset(offset)))


def rebuild(progress: Progress, batch_size: int = BATCH_SIZE) -> int:
    """Index every post that exists now into a new table, then swap it in; returns how many.

    ``progress(done, total)`` is called before the first batch and after each one. One build
    at a time: a second concurrent call would drop the first's build table. The build uses its
    own connection, so on PostgreSQL the caller must not hold a transaction that has searched.
    """
    backend = _backend()
    with db.engine.connect() as conn:
        count, upto = conn.execute(sa.select(sa.func.count(Post.id), sa.func.max(Post.id))).one()
        # A build table left behind by a killed worker would block this one.
        backend.drop(conn, BUILD_TABLE)
        backend.create(conn, BUILD_TABLE)
        conn.commit()
        try:
            done = _fill(conn, backend, count, upto or 0, batch_size, progress)
            backend.finish(conn, BUILD_TABLE)
            conn.commit()
            _swap(conn, backend)
        except BaseException:
            # Also on cancel and timeout, which arrive as exceptions from progress() or a signal.
            conn.rollback()
            backend.drop(conn, BUILD_TABLE)
            conn.commit()
            raise
    return done


def _swap(conn: Connection, backend: _Backend) -> None:
    for attempt in range(1, SWAP_ATTEMPTS + 1):
        try:
            backend.swap(conn)
            conn.commit()
            return
        except sa.exc.DBAPIError as exc:
            conn.rollback()
            if attempt == SWAP_ATTEMPTS or not backend.lock_busy(exc):
                raise
        time.sleep(SWAP_PAUSE)


def _fill(
    conn: Connection, backend: _Backend, total: int, upto: int, batch_size: int, progress: Progress
) -> int:
    done, after = 0, 0
    progress(done, total)
    while True:
        ids = conn.scalars(
            sa.select(Post.id).where(Post.id > after, Post.id <= upto).order_by(Post.id).limit(batch_size)
        ).all()
        if not ids:
            return done
        backend.fill(conn, BUILD_TABLE, after, ids[-1])
        # Committed before reporting: on SQLite, the report's own write must not wait for ours.
        conn.commit()
        done, after = done + len(ids), ids[-1]
        # On PostgreSQL a post committed late can carry an id below ``upto`` yet miss the count.
        progress(done, max(total, done))
