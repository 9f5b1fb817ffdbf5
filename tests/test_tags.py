"""Tag suggestions: up to three of the org's own tags that fit a page."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.links.outcome import TagChoice, TagSuggestion
from chalicelib.links.tags import MIN_PAGES_FOR_COMMON, common_words, suggest_new_tags, suggest_tags

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


SOURDOUGH_TITLE = "How to bake sourdough bread at home"
SOURDOUGH_TEXT = (
    "Sourdough bread is made with a starter instead of commercial yeast. Feed your starter the day before you bake. "
    "Mix flour, water and salt, then fold the dough every half hour. Shape the loaf and let it rise overnight. "
    "Bake the bread in a hot dutch oven so the crust turns dark and crisp. Baking sourdough takes patience, "
    "but the bread keeps for days and the crumb stays soft. "
) * 2
SOURDOUGH_URL = "https://example.com/recipes/sourdough-bread"


def test_a_sourdough_page_suggests_new_bread_and_baking_tags():
    existing, new = suggest_new_tags((PYTHON,), SOURDOUGH_TITLE, SOURDOUGH_TEXT, SOURDOUGH_URL)

    names = [tag.name for tag in new]
    assert existing == ()
    assert {"bread", "bake"} <= set(names), names
    assert len(names) <= 3
    assert all(0.5 <= tag.score <= 1 for tag in new)
    assert [tag.score for tag in new] == sorted((tag.score for tag in new), reverse=True)


@pytest.mark.parametrize("spelling", ["Bread", "breads", "BREAD"])
def test_an_existing_tag_in_another_spelling_is_preferred_over_a_new_one(spelling):
    bread = TagChoice("t-bread", spelling)

    existing, new = suggest_new_tags((PYTHON, bread), SOURDOUGH_TITLE, SOURDOUGH_TEXT, SOURDOUGH_URL)

    assert "t-bread" in [s.tag_id for s in existing]
    assert not any("bread" in tag.name for tag in new), new


@pytest.mark.parametrize("spelling", ["Sour-Dough", "sourdogh", "Sourdoughs"])
def test_a_two_word_or_near_spelling_of_a_keyphrase_counts_as_existing(spelling):
    existing, new = suggest_new_tags((TagChoice("t-sd", spelling),), SOURDOUGH_TITLE, SOURDOUGH_TEXT, SOURDOUGH_URL)

    assert [s.tag_id for s in existing] == ["t-sd"]
    assert "sourdough" not in [tag.name for tag in new]


def test_new_tags_leave_out_function_words_numbers_and_headline_only_words():
    existing, new = suggest_new_tags((), "The 2024 results are here", "Results came in on Monday. The results were good.", None)

    assert [tag.name for tag in new] == ["result"]


FRAMED_TEXT = (
    "Home page. Read more articles on our site. Photo credit: the agency. "
    + "Kayak touring along the coast takes planning: a kayak, a chart, the tides. " * 3
    + "Share this page. Read more. Photo credit: the agency. Home. Related posts on this site. News. "
)


def test_new_tags_leave_out_the_words_of_the_web_page_frame():
    existing, new = suggest_new_tags((), "Kayak touring | Home page", FRAMED_TEXT, "https://example.com/home/page")

    names = [tag.name for tag in new]
    assert "kayak" in " ".join(names), names
    assert not {"page", "home", "read", "site", "photo", "credit", "photo credit", "new", "news"} & set(
        word for name in names for word in [name, *name.split()]), names


def test_a_word_whose_singular_is_a_function_word_is_left_out():
    _, new = suggest_new_tags((), "Kayak news", "Kayak news from the coast. " * 4, None)

    assert "new" not in {word for tag in new for word in tag.name.split()}, new


def test_the_org_s_common_words_are_no_new_tags():
    # Thirty pages of the org: every one says "using" and "data", each topic is on one in ten.
    topics = ["tide", "wind", "rain", "snow", "hail", "frost", "storm", "cloud", "heat", "mist"] * 3
    pages = [f"Using the data from station {n}: the {topic} report." for n, topic in enumerate(topics)]
    title = "Using the data for a kayak tour"
    text = "Using the data, a kayak tour along the coast is planned with care. " * 4

    common = common_words(pages)

    assert {"using", "data", "station", "report"} <= common
    assert not {"tide", "kayak"} & common
    _, new = suggest_new_tags((), title, text, None, common)
    assert "kayak tour" in [tag.name for tag in new]
    assert not {"using", "data"} & {word for tag in new for word in tag.name.split()}
    # The same page in an org without those pages: they would be suggested.
    _, without = suggest_new_tags((), title, text, None)
    assert {"using", "data"} & {word for tag in without for word in tag.name.split()}


def test_too_few_pages_have_no_common_words():
    pages = ["Using the data again and again."] * (MIN_PAGES_FOR_COMMON - 1)

    assert common_words(pages) == frozenset()
    assert "using" in common_words(pages + ["Using it."])


@settings(max_examples=50, deadline=None)
@given(title=st.none() | st.text(max_size=60), text=st.text(max_size=400), names=st.lists(st.text(max_size=12), max_size=4))
def test_any_page_gives_deterministic_clean_new_tags(title, text, names):
    tags = tuple(TagChoice(f"t{i}", name) for i, name in enumerate(names))

    first = suggest_new_tags(tags, title, text, "https://example.com/x")

    assert first == suggest_new_tags(tags, title, text, "https://example.com/x")
    existing, new = first
    assert len(new) <= 3 and len(existing) <= 3
    assert all(tag.name and tag.name == tag.name.strip().lower() for tag in new)
    assert len({tag.name for tag in new}) == len(new)
