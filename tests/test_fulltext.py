import pytest

from app.sansio.fulltext import MAX_QUERY_LENGTH, MAX_TERMS, fts5_match, terms, tsquery_text


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("rust", ["rust"]),
        ("  rust   lang\tfast\n", ["rust", "lang", "fast"]),
        ("rust rust Rust", ["rust", "Rust"]),
        ("", []),
        ("   ", []),
        ('* " ( ) ^ - : + ...', []),
        ('"rust', ['"rust']),
        ("c++ foo*", ["c++", "foo*"]),
        ("café naïve 東京", ["café", "naïve", "東京"]),
        ("rust AND go OR NOT zig NEAR c", ["rust", "go", "zig", "c"]),
        ("and or not near", ["and", "or", "not", "near"]),
        ("a\x00b \x1b[31m", ["a", "b", "[31m"]),
        ("lone\ud800surrogate", ["lone", "surrogate"]),
    ],
)
def test_terms(query, expected):
    assert terms(query) == expected


def test_terms_are_capped():
    assert terms(" ".join(f"w{i}" for i in range(100))) == [f"w{i}" for i in range(MAX_TERMS)]
    assert terms("x" * (MAX_QUERY_LENGTH + 10)) == ["x" * MAX_QUERY_LENGTH]


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["rust"], '"rust"'),
        (["rust", "go"], '"rust" "go"'),
        (['"rust'], '"""rust"'),
        (['say "hi"'], '"say ""hi"""'),
        (["NEAR(a", "b)*"], '"NEAR(a" "b)*"'),
        (["body:x", "^y", "-z"], '"body:x" "^y" "-z"'),
    ],
)
def test_fts5_match_quotes_every_word(words, expected):
    assert fts5_match(words) == expected


def test_tsquery_text_joins_the_words():
    assert tsquery_text(["c++", "foo*"]) == "c++ foo*"
