"""Tag suggestions: up to three of the org's own tags that fit a page."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.links.outcome import TagChoice, TagSuggestion
from chalicelib.links.tags import suggest_tags

PYTHON = TagChoice("t-py", "Python")
ML = TagChoice("t-ml", "machine-learning")
JS = TagChoice("t-js", "JavaScript")
API = TagChoice("t-api", "APIs")
RECIPES = TagChoice("t-rec", "Recipes")
GARDEN = TagChoice("t-gar", "gardening")


def test_title_match_scores_highest():
    assert suggest_tags((PYTHON, RECIPES), "Ten Python tricks", "", "https://example.com/") == (
        TagSuggestion("t-py", 0.9),
    )


def test_url_match():
    assert suggest_tags((PYTHON,), "Ten tricks", "", "https://example.com/python/tricks") == (
        TagSuggestion("t-py", 0.7),
    )


def test_text_mentions_add_up_to_the_threshold():
    three = "Python here. Python there. Python everywhere."
    four = three + " Python again."

    assert suggest_tags((PYTHON,), "Tricks", three, None) == ()
    assert suggest_tags((PYTHON,), "Tricks", four, None) == (TagSuggestion("t-py", 0.6),)


def test_places_combine_as_independent_signs():
    # 1 - (1 - 0.9) * (1 - 0.7) * (1 - 0.3)
    assert suggest_tags((PYTHON,), "Python tips", "python and python", "https://example.com/python") == (
        TagSuggestion("t-py", 0.979),
    )


def test_case_hyphens_and_plurals_are_folded():
    tags = (ML, API, RECIPES)

    found = suggest_tags(tags, "An API for Machine Learning", "", "https://cooking.example.com/recipe/42")

    assert found == (TagSuggestion("t-api", 0.9), TagSuggestion("t-ml", 0.9), TagSuggestion("t-rec", 0.7))


def test_camel_case_and_run_together_names():
    assert suggest_tags((ML,), "Intro", "", "https://example.com/MachineLearning/intro") == (TagSuggestion("t-ml", 0.7),)
    assert suggest_tags((JS,), "Java script closures explained", "", None) == (TagSuggestion("t-js", 0.9),)


def test_close_spellings_in_the_title_match_in_proportion():
    # 0.9 for the title times difflib's 0.947 for "javascript" / "javscript".
    assert suggest_tags((JS,), "Javscript closures", "", None) == (TagSuggestion("t-js", 0.853),)


def test_short_words_do_not_match_approximately():
    assert suggest_tags((TagChoice("t-cat", "cats"),), "My new car", "", None) == ()


def test_at_most_three_best_first_ties_by_name():
    tags = (RECIPES, GARDEN, PYTHON, ML, JS)
    title = "Python, JavaScript, gardening and recipes"

    found = suggest_tags(tags, title, "", "https://example.com/machine-learning")

    assert found == (TagSuggestion("t-gar", 0.9), TagSuggestion("t-js", 0.9), TagSuggestion("t-py", 0.9))


def test_nothing_fits():
    found = suggest_tags((PYTHON, ML, RECIPES), "A day at the beach", "Sun, sand and a little sea.", "https://example.com/beach")

    assert found == ()


def test_no_tags_or_no_page():
    assert suggest_tags((), "Python", "Python", "https://example.com/python") == ()
    assert suggest_tags((PYTHON,), None, None, None) == ()


def test_names_without_words_are_ignored():
    assert suggest_tags((TagChoice("t-x", "!!!"), TagChoice("t-y", "")), "!!! anything", "", None) == ()


def test_a_malformed_url_is_only_not_a_source():
    assert suggest_tags((PYTHON,), "Python", "", "http://[::1") == (TagSuggestion("t-py", 0.9),)


@settings(max_examples=60, deadline=None)
@given(
    names=st.lists(st.text(max_size=15), max_size=8),
    title=st.none() | st.text(max_size=60),
    text=st.none() | st.text(max_size=500),
    url=st.none() | st.text(max_size=60),
)
def test_any_input_gives_at_most_three_known_tags_scored_in_range(names, title, text, url):
    tags = tuple(TagChoice(f"t{i}", name) for i, name in enumerate(names))

    found = suggest_tags(tags, title, text, url)

    assert len(found) <= 3
    assert len({s.tag_id for s in found}) == len(found)
    assert {s.tag_id for s in found} <= {t.id for t in tags}
    assert all(0.5 <= s.score <= 1.0 for s in found)
    assert [s.score for s in found] == sorted((s.score for s in found), reverse=True)
