"""A chapter's parameters as the runner reads them (bea_book.params, bea_book.sources): YAML
aliases refused before expansion, YAML 1.1's octal and sexagesimal numbers refused, None only
where it means something, output folders inside the run."""
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bea_book as book
from bea_book import params as book_params


def test_yaml_aliases_are_refused_before_expansion(tmp_path):
    laughs = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for i, name in enumerate("bcdefghij"):
        prev = "abcdefghij"[i]
        laughs.append(f"{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]")
    path = tmp_path / "params.yml"
    path.write_text("\n".join(laughs) + "\n")
    start = time.monotonic()
    with pytest.raises(book.BookError, match=r"not valid YAML .*aliases \(\*a\) are not accepted"):
        book.load_params_file(path)
    assert time.monotonic() - start < 1.0  # refused while parsing, nothing expanded
    assert book.parse_value("*a") == "*a"  # -p: not YAML then, a string the type check refuses
    path.write_text("n: " + "1" * (2 << 20))
    with pytest.raises(book.BookError, match="more than 1048576"):
        book.load_params_file(path)


DECLARED = book_params.Declared({"n_steps": "100", "h": "1e-2", "fig_dir": '"figures"',
                                 "n_train": "1000", "run_dir": "None"}, ["n_train", "run_dir"])


@settings(max_examples=60, deadline=None)
@given(st.one_of(
    st.integers(0, 10**6).map(lambda n: f"0{n}"),  # leading zeros: octal in YAML 1.1
    st.lists(st.integers(0, 59), min_size=2, max_size=3).map(
        lambda xs: ":".join(map(str, xs))),  # sexagesimal in YAML 1.1
))
def test_integers_with_leading_zeros_or_colons_are_refused(text):
    value = book.parse_value(text)
    assert value == text  # a string, not the number YAML 1.1 made of it
    for name in ("n_steps", "h"):
        with pytest.raises(book.BookError, match="write numbers in decimal"):
            book.check_overrides("c", {name: value}, DECLARED)


@settings(max_examples=40, deadline=None)
@given(st.integers(-10**6, 10**6))
def test_decimal_integers_still_read_as_integers(n):
    assert book.parse_value(str(n)) == n and type(book.parse_value(str(n))) is int


def test_null_only_where_none_means_something():
    assert book.check_overrides("c", {"n_train": None, "run_dir": None}, DECLARED) == {
        "n_train": None, "run_dir": None}
    for name in ("n_steps", "h", "fig_dir"):
        with pytest.raises(book.BookError, match=f"parameter {name} cannot be None"):
            book.check_overrides("c", {name: book.parse_value("null")}, DECLARED)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["..", "a", "b", "."]), min_size=1, max_size=5),
       st.booleans())
def test_output_folders_stay_inside_the_run(parts, absolute):
    text = ("/" if absolute else "") + "/".join(parts)
    escapes = absolute or ".." in parts
    if escapes:
        with pytest.raises(book.BookError, match="parameter fig_dir must be a folder inside"):
            book.check_overrides("c", {"fig_dir": text}, DECLARED)
    else:
        assert book.check_overrides("c", {"fig_dir": text}, DECLARED) == {"fig_dir": text}
