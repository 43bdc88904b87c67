"""The search index on the real database of the run: SQLite FTS5 by default, PostgreSQL with TEST_DATABASE_URL."""

import random
import threading

import pytest
import sqlalchemy as sa

from app import search
from app.extensions import db
from app.models import Post
from app.posts import write_post
from app.search import BUILD_TABLE, INDEX_TABLE, IndexMissing, index_built, rebuild
from tests.conftest import make_user
from tests.test_migrations import flask

POSTS = [
    ("alice", "Rust makes systems programming safe, rust rust rust"),
    ("alice", "I once heard about rust from a friend at the bakery on a long walk home"),
    ("bob", "The runners were running along the river"),
    ("bob", "Baking sourdough bread every weekend"),
    ("carol", "Python and Go are both fine languages"),
]


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


@pytest.fixture
def posts(ctx):
    users = {name: make_user(name) for name in {name for name, _ in POSTS}}
    return [write_post(users[name], body) for name, body in POSTS]


def bodies(query: str, **kwargs) -> list[str]:
    found = [p.body for p in search.search(query, **kwargs)]
    # As a request's teardown would: on PostgreSQL an open transaction that read the index
    # holds off the next swap.
    db.session.rollback()
    return found


def quiet(done: int, total: int) -> None:
    pass


def tables() -> set[str]:
    return set(sa.inspect(db.engine).get_table_names())


@pytest.mark.usefixtures("posts")
def test_searching_before_the_first_rebuild_says_the_index_is_missing():
    assert not index_built()
    with pytest.raises(IndexMissing):
        search.search("rust")
    with pytest.raises(IndexMissing):
        search.search("")


@pytest.mark.usefixtures("posts")
def test_rebuild_reports_progress_by_posts_and_finds_posts_by_their_words():
    reports = []
    assert rebuild(lambda done, total: reports.append((done, total)), batch_size=2) == 5
    assert reports == [(0, 5), (2, 5), (4, 5), (5, 5)]
    assert index_built()
    assert bodies("sourdough") == ["Baking sourdough bread every weekend"]
    assert bodies("python go") == ["Python and Go are both fine languages"]
    assert bodies("PYTHON") == ["Python and Go are both fine languages"]
    assert bodies("python rust") == []
    assert bodies("nothing-like-this") == []
    assert bodies("") == []


@pytest.mark.usefixtures("posts")
def test_results_are_ranked_and_carry_their_author():
    rebuild(quiet)
    found = search.search("rust")
    assert [p.body for p in found] == [POSTS[0][1], POSTS[1][1]]
    assert found[0].created_at <= found[1].created_at
    assert [p.author.username for p in found] == ["alice", "alice"]
    assert bodies("rust", limit=1) == [POSTS[0][1]]
    assert bodies("rust", limit=1, offset=1) == [POSTS[1][1]]
    assert bodies("rust", offset=2) == []


@pytest.mark.usefixtures("posts")
@pytest.mark.parametrize("query", ["run", "runs", "running", "runner", "rivers"])
def test_words_are_stemmed(query):
    rebuild(quiet)
    assert bodies(query) == ["The runners were running along the river"]


@pytest.mark.usefixtures("posts")
@pytest.mark.parametrize(
    "query",
    [
        '"',
        '"rust',
        'rust"',
        '""""',
        "*",
        "rust*",
        "NEAR",
        "NEAR(rust bakery)",
        "rust NEAR/2 bakery",
        "(rust",
        "rust)",
        "((()))",
        "rust AND",
        "OR rust",
        "NOT",
        "-rust",
        "body:rust",
        "post_id:1",
        "^rust",
        "rust:*",
        "rust & !bakery | (x",
        "'; DROP TABLE posts; --",
        "\\",
        "\x00",
        "rust\x00",
        "東京 🦀",
        "_",
        "rust _",
        "a" * 5000,
    ],
)
def test_tricky_queries_never_fail(query):
    rebuild(quiet)
    found = search.search(query)
    assert all(isinstance(p, Post) for p in found)
    assert search.search("rust")


@pytest.mark.usefixtures("posts")
def test_random_junk_never_fails():
    rebuild(quiet)
    rng = random.Random(7)
    alphabet = "abc rust\"*()^:-+&|!~<>{}[]\\/'.,;NEAROT\t\n\x00é東"
    for _ in range(300):
        search.search("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30))))


def test_posts_written_after_a_rebuild_are_found_after_the_next(posts):
    rebuild(quiet)
    late = write_post(posts[0].author, "A late post about sourdough")
    assert bodies("late") == []
    rebuild(quiet)
    assert bodies("late") == [late.body]
    assert len(bodies("sourdough")) == 2


def test_deleted_posts_drop_out_of_results_at_once(posts):
    rebuild(quiet)
    db.session.delete(posts[3])
    db.session.commit()
    assert bodies("sourdough") == []


def test_searches_answer_from_the_old_index_while_a_rebuild_runs(posts):
    rebuild(quiet)
    write_post(posts[0].author, "A late post about sourdough")
    seen = []
    rebuild(lambda done, total: seen.append(len(bodies("sourdough"))), batch_size=2)
    assert seen == [1, 1, 1, 1]
    assert len(bodies("sourdough")) == 2


def test_an_interrupted_rebuild_keeps_the_old_index_and_leaves_no_build_table(posts):
    rebuild(quiet)
    write_post(posts[0].author, "A late post about sourdough")

    class Stop(Exception):
        pass

    def stop_half_way(done: int, total: int) -> None:
        if done:
            raise Stop

    with pytest.raises(Stop):
        rebuild(stop_half_way, batch_size=2)
    assert bodies("sourdough") == ["Baking sourdough bread every weekend"]
    assert not any(name.startswith(BUILD_TABLE) for name in tables())


def test_a_build_table_left_by_a_killed_worker_does_not_block_the_next_rebuild(posts):
    with db.engine.connect() as conn:
        search._backend().create(conn, BUILD_TABLE)
        conn.commit()
    assert BUILD_TABLE in tables()
    assert rebuild(quiet) == len(posts)
    assert bodies("sourdough")
    assert INDEX_TABLE in tables()
    assert BUILD_TABLE not in tables()


def test_on_postgresql_the_swap_outwaits_a_reader_without_blocking_searches(posts):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's table locks")
    rebuild(quiet)
    write_post(posts[0].author, "A late post about sourdough")
    engine = db.engine
    with engine.connect() as reader:
        reader.exec_driver_sql("SELECT count(*) FROM search_index")
        # Swap attempts wait for the lock during about [0, 1], [1.5, 2.5], [3, 4] seconds. A search
        # arriving in the second wait gets the old index once that attempt gives up; the reader
        # lets go during the third, which succeeds.
        release = threading.Timer(3.5, reader.rollback)
        release.start()
        seen = []
        searcher = threading.Timer(1.8, lambda: seen.append(_count_matches(engine, "sourdough")))
        searcher.start()
        rebuild(quiet)
        release.join()
        searcher.join()
    assert seen == [1]
    assert len(bodies("sourdough")) == 2


def _count_matches(engine: sa.Engine, query: str) -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT count(*) FROM search_index WHERE tsv @@ plainto_tsquery('english', :q)"),
            {"q": query},
        ).scalar_one()


@pytest.mark.usefixtures("ctx")
def test_an_empty_database_builds_an_empty_index():
    reports = []
    assert rebuild(lambda done, total: reports.append((done, total))) == 0
    assert reports == [(0, 0)]
    assert bodies("anything") == []


def test_migrations_see_no_drift_once_the_index_exists(make_app, database_url):
    assert flask(database_url, "db", "upgrade").returncode == 0
    app = make_app()
    with app.app_context():
        write_post(make_user("alice"), "Rust is fun")
        rebuild(quiet)
        assert INDEX_TABLE in tables()
    check = flask(database_url, "db", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "No new upgrade operations detected" in check.stdout + check.stderr
