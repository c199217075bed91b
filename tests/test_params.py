"""A chapter's parameters as the runner reads them (bea_book.params, bea_book.sources): YAML
aliases refused before expansion, YAML 1.1's octal and sexagesimal numbers refused, None only
where it means something, output folders inside the run.

A chapter's parameters (``bea_book.params``): every value is checked against the parameters
cell before any kernel starts; a parameter that names a path points where its rule allows
(issue 32, rows 1, 10, 11 and 12).
"""
import tempfile
import time
from pathlib import Path

import nbformat
import papermill
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bea_book as book
from bea_book import params as book_params
from bea_book.execute import plan
from bea_book.sources import chapter_notebook, chapters


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
        with pytest.raises(book.BookError, match="parameter fig_dir names a path, which must "
                                                 "lie inside the run's folder"):
            book.check_overrides("c", {"fig_dir": text}, DECLARED)
    else:
        assert book.check_overrides("c", {"fig_dir": text}, DECLARED) == {"fig_dir": text}


ROOT = Path(__file__).resolve().parents[1]  # the real book
CHAPTERS = list(chapters(ROOT))

# This test's own reading of "names a path", written apart from the runner's so that the two
# check each other: a string (or None) default, and a name ending in a word for a path, a
# default that looks like one, or a comment that speaks of one.
PATH_WORDS = ("dir", "file", "path", "folder", "root", "directory")
# The string (or None) parameters that name no path. A new string parameter fails
# test_every_string_parameter_is_known_to_name_a_path_or_not until it is added here or named
# (and then checked) as a path.
NOT_PATHS = {"activation", "dataset", "device", "dtype", "in_range_model", "n_test", "workers"}
READ_ANYWHERE = {"data_root"}  # the data a chapter reads (never writes): wherever it is kept
OUTSIDE = ["../../outside.csv", "/tmp/outside", "~/outside", "a/../../outside"]


def cell_parameters(chapter: str) -> dict[str, tuple[str, str]]:
    """name -> (default as written, comment) of the chapter's parameters cell, as papermill
    reads it."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{chapter}.ipynb"
        nbformat.write(chapter_notebook(ROOT, chapter, chapters(ROOT)[chapter]), path)
        found = papermill.inspect_notebook(str(path))
    return {name: (info["default"], info["help"] or "") for name, info in found.items()}


def is_text_or_none(default: str) -> bool:
    return default == "None" or default[:1] in "\"'" and default[-1:] == default[:1]


def names_a_path(name: str, default: str, comment: str) -> bool:
    if not is_text_or_none(default):
        return False
    text = default.strip("\"'")
    return (name.split("_")[-1] in PATH_WORDS or "/" in text or text in (".", "..")
            or (("." in text) and text.rsplit(".", 1)[1].isalpha())
            or any(word in comment.lower().replace(",", " ").split()
                   for word in ("folder", "file", "directory", "path", "folder:")))


def test_the_book_has_the_path_parameters_this_test_walks():
    found = {c: sorted(n for n, (d, m) in cell_parameters(c).items() if names_a_path(n, d, m))
             for c in CHAPTERS}
    assert {"runs_file", "fig_dir"} <= set(found["networks"]) & set(found["mechanism"])
    assert {"data_root", "run_dir", "results_dir"} <= set(found["networks"])
    assert all("fig_dir" in found[c] for c in CHAPTERS if c != "findings")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_string_parameter_is_known_to_name_a_path_or_not(chapter):
    for name, (default, comment) in cell_parameters(chapter).items():
        if is_text_or_none(default) and not names_a_path(name, default, comment):
            assert name in NOT_PATHS, (f"{chapter}: does parameter {name} = {default} "
                                       f"({comment!r}) name a path? Add it to NOT_PATHS or "
                                       "name it so")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_path_parameter_is_refused_outside_its_place_before_any_kernel(chapter, tmp_path):
    """Before: only fig_dir was checked; `-p runs_file ../../../../x/precious.txt` overwrote a
    file outside the build folder and exited 0, and the table never reached the run."""
    build = tmp_path / "build"
    walked = 0
    for name, (default, comment) in cell_parameters(chapter).items():
        if not names_a_path(name, default, comment) or name in READ_ANYWHERE:
            continue
        for value in OUTSIDE:
            with pytest.raises(book.BookError, match=f"parameter {name} "):
                plan([chapter], root=ROOT, build_dir=build, params={name: value})
            walked += 1
    assert not (build / "runs").exists()  # no kernel started, nothing executed
    assert walked or chapter not in ("networks", "mechanism")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_the_runner_finds_every_path_parameter_this_test_finds(chapter):
    from bea_book.params import Declared, path_parameters

    cell = cell_parameters(chapter)
    declared = Declared({n: d for n, (d, _) in cell.items()}, (),
                        {n: c for n, (_, c) in cell.items()})
    ours = {n for n, (d, c) in cell.items() if names_a_path(n, d, c)}
    assert ours <= set(path_parameters(declared))


@pytest.mark.parametrize("name, value", [
    ("fig_dir", "figures/run-2"), ("runs_file", "tables/runs.csv"), ("results_dir", "results/x"),
    ("run_dir", "results/networks/mine"), ("data_root", "/datasets/cifar"),
    ("data_root", "../data"),
])
def test_a_path_where_its_rule_allows_is_accepted(name, value, tmp_path):
    plans = plan(["networks"], root=ROOT, build_dir=tmp_path / "b", params={name: value})
    assert plans[0].overrides[name] == value


@pytest.mark.parametrize("name, value, message", [
    ("run_dir", "book/runs", "must be a folder inside the repository's results/ folder"),
    ("results_dir", "results/../bea_lib", "must be a folder inside the repository's results/"),
    ("runs_file", "networks.ipynb", "a file the runner writes in the run's folder"),
    ("runs_file", "run.json", "a file the runner writes in the run's folder"),
    ("fig_dir", "", "names a path, which must lie inside the run's folder"),
    ("runs_file", 5, "names a path and must be a string"),
])
def test_a_path_outside_its_rule_is_one_line_naming_it(name, value, message, tmp_path):
    with pytest.raises(book.BookError, match=f"'networks': parameter {name} .*{message}"):
        plan(["networks"], root=ROOT, build_dir=tmp_path / "b", params={name: value})


def test_a_results_path_through_a_link_out_of_the_results_folder_is_refused(tmp_path):
    root = tmp_path / "repo"
    (root / "results").mkdir(parents=True)
    (root / "results" / "out").symlink_to(tmp_path)
    declared = book.params.Declared({"run_dir": "None"}, ["run_dir"], {"run_dir": "a folder"})
    with pytest.raises(book.BookError, match="parameter run_dir must be a folder inside"):
        book.check_overrides("c", {"run_dir": "results/out/x"}, declared, root=root)
    assert book.check_overrides("c", {"run_dir": "results/x"}, declared, root=root)


@pytest.mark.parametrize("chapter, name, value, message", [
    ("adam", "n_steps", 0, "parameter n_steps counts something and must be at least 1"),
    ("adam", "n_scales", 1, "parameter n_scales must be at least 2"),
    ("adam", "p", 10**20, "parameter p must be an integer that fits in 64 bits"),
    ("adam", "seed", 10**20, "parameter seed must be an integer that fits in 64 bits"),
    ("adam", "h", float("nan"), "parameter h must be a finite number"),
    ("networks", "models", {}, "parameter models must not be empty"),
    ("networks", "beta_grid", [], "parameter beta_grid must not be empty"),
    ("mechanism", "seeds", [0, 10**19], "parameter seeds must be an integer that fits in 64"),
])
def test_values_no_computation_can_use_are_refused_before_any_kernel(chapter, name, value,
                                                                     message, tmp_path):
    """Before: `-p n_steps 0` failed after 21 s with "stack expects a non-empty TensorList",
    `-p n_scales 1` and `-p models {}` with a bare StopIteration, a seed of 10**20 with
    "Overflow when unpacking long long", naming no parameter."""
    with pytest.raises(book.BookError, match=f"chapter '{chapter}': {message}"):
        plan([chapter], root=ROOT, build_dir=tmp_path / "b", params={name: value})
    assert not (tmp_path / "b" / "runs").exists()


def test_zero_where_the_comment_gives_it_a_meaning_and_negative_seeds_are_accepted():
    declared = book.params.Declared({"every": "5", "seed": "0"}, (),
                                    {"every": "epochs between checks (0: never)"})
    assert book.check_overrides("c", {"every": 0, "seed": -3}, declared) == {"every": 0,
                                                                            "seed": -3}
    with pytest.raises(book.BookError, match="parameter every counts something and must be at "
                                             r"least 0 \(its default is 5\), got -1"):
        book.check_overrides("c", {"every": -1}, declared)


def test_a_parameter_given_twice_in_a_params_file_is_refused(tmp_path):
    """Before: PyYAML kept the last value silently."""
    path = tmp_path / "p.yml"
    path.write_text("rho: 0.9\nh: 1.0e-3\nrho: 0.5\n")
    with pytest.raises(book.BookError, match=f"the parameters file {path} is not valid YAML at "
                                             "line 3, column 1: the key 'rho' is given twice"):
        book.load_params_file(path)
