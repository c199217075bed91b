"""The book as a reader sees it: the built HTML, read statically and opened in a real browser.

The HTML folder comes from ``BEA_HTML_BUILD`` (default ``_build/smoke/html``, what the smoke
book of ``make test`` renders); without it the tests that need it are skipped with a message.
Static checks read every page; the browser checks open every page from disk in Debian's
``chromium``, driven by Playwright, with every request that is not a local file aborted, wait
for MathJax, and save a full-page screenshot of each page to ``<build>/screenshots/``. In the
browser, at a 1280 px window, each page is held to the limits of a page a reader reads: at most
``MAX_HEIGHT_PX`` tall, code in sight at most ``MAX_CODE_SHARE`` of its height, no display
formula wider than the text column, no TeX or MyST role left as text, and figure text of at
least ``bea_lib.figures.plotting.MIN_TEXT_PX`` CSS px (each PNG records its smallest text, see
``bea_lib.figures.plotting.savefig``); the measurements go to ``<build>/screenshots/metrics.json``.
At a phone's 390 px window (``screenshots/390/``, with its own ``metrics.json``) the page must not
scroll sideways, the summary table of verdicts must fit the column (it is stacked), and a
display formula wider than the column must scroll inside it with the visible cue of
``bea_book/static/code.css`` (a scroller whose background shows the scroll shadows).

The chapters' sources are checked too (no build needed): code cells fit the page.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("BEA_HTML_BUILD", ROOT / "_build" / "smoke" / "html")).resolve()
CHROMIUM = os.environ.get("BEA_CHROMIUM", "/usr/bin/chromium")
MAX_LINE = 99  # characters: a code cell wider than this scrolls sideways in the book's layout
# hosts that serve JS, CSS or fonts; the book must not load (or mention) any of them
CDN_HOSTS = ("cdn.jsdelivr.net", "unpkg.com", "cdnjs.cloudflare.com", "polyfill.io",
             "fonts.googleapis.com", "fonts.gstatic.com", "cdn.mathjax.org", "ajax.googleapis.com",
             "code.jquery.com")
UNRESOLVED_ROLE = re.compile(r"\{[a-z]+(?::[a-z]+)?\}`")  # {cite}`x`, {numref}`x`, {glue:text}`x`
RAW_TABLE = re.compile(r"\|\s*:?-{3,}:?\s*\|")  # a Markdown table's separator row
# ... and as it reads in a page, where Sphinx's smart quotes turn "---" into an em dash
RAW_TABLE_TEXT = re.compile(r"\|\s*:?(?:-{3,}|[—–]-*):?\s*\|")
RAW_MATH = re.compile(r"\$\$|\$[^\s$][^$\n]*\$")  # $...$ or $$ outside the math elements
TEXT_SKIP = ("script", "style", "pre", "code", "kbd", "samp", "mjx-container")  # not prose
PAGE_TIMEOUT_MS = 60_000  # loading and typesetting one page; the longest take a few seconds
MATH_CLASS = "math"  # the class of Sphinx's <span>/<div> around a formula
MAX_HEIGHT_PX = 15_000  # a page at a 1280 px window: longer ones are split or fold their tables
MAX_CODE_SHARE = 0.20   # of a page's height taken by code cells in sight: the prose leads
WIDTHS = (1280, 390)    # a laptop's window, and a phone's (an iPhone 12-15 is 390 CSS px wide)
SUMMARY_CLASS = "bea-summary"  # evidence.findings.SUMMARY_CLASS: the table stacked on a phone


# ---------------------------------------------------------------------------------------------
# The chapters' sources


def _code_cells(md: Path):
    import jupytext

    notebook = jupytext.read(md)
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


CHAPTERS = sorted((ROOT / "book").glob("*.md"))


@pytest.mark.parametrize("md", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_code_cells_fit_the_page(md):
    """Every line of every code cell is at most MAX_LINE characters."""
    long = [f"cell {i}: {len(line)} chars: {line[:60]}..."
            for i, cell in enumerate(_code_cells(md))
            for line in cell.source.splitlines() if len(line) > MAX_LINE]
    assert not long, f"{md.name}: code lines over {MAX_LINE} characters:\n" + "\n".join(long)


LIST_MARKER = re.compile(r"\s*(?:[-+*]|\d+[.)])(?:\s|$)")  # what starts a Markdown list item


def lines_starting_a_list_inside_math(text: str) -> list[tuple[int, str]]:
    """(line number, line) of each prose line that starts like a list item ("- x", "+ x",
    "1. x") while an inline ``$...$`` opened on an earlier line of the paragraph is still open:
    MyST ends the paragraph there, and the formula is printed as raw TeX beside a stray bullet."""
    found, fence, display, dollars = [], None, False, 0
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if fence is None and re.match(r"(`{3,}|~{3,})", stripped):
            fence = re.match(r"(`{3,}|~{3,})", stripped).group(1)
            continue
        if fence is not None:
            fence = None if stripped.startswith(fence) else fence
            continue
        if stripped.startswith("$$"):
            display = not display if stripped.count("$$") == 1 else display
            dollars = 0
            continue
        if display:
            continue
        if not stripped:
            dollars = 0
            continue
        if dollars % 2 and LIST_MARKER.match(line):
            found.append((number, line))
        dollars += len(re.findall(r"(?<!\\)\$", line))
    return found


def test_inline_math_never_starts_a_line_like_a_list_item():
    """The cause of raw TeX in a page: a formula wrapped so that a line begins with "- "."""
    assert lines_starting_a_list_inside_math("a $x\n- y$ b") == [(2, "- y$ b")]
    assert not lines_starting_a_list_inside_math("a $x - y$\n- an item")
    bad = {md.name: found for md in CHAPTERS if (found := lines_starting_a_list_inside_math(
        md.read_text(encoding="utf-8")))}
    assert not bad, f"inline math wrapped into a list item (join the formula's lines): {bad}"


def test_local_mathjax_is_the_pinned_version_and_copies_what_pages_load(tmp_path):
    """The Sphinx extension finds MathJax 3.2.2 in the installed wheel and copies the entry
    script with the fonts and TeX extensions it loads at run time (no build needed)."""
    from bea_book import mathjax_local

    entry = mathjax_local.copy_mathjax(tmp_path)
    assert entry == tmp_path / "mathjax" / "es5" / "tex-mml-chtml.js"
    assert b"3.2.2" in entry.read_bytes()[:100_000]  # the bundle states its version
    fonts = list((tmp_path / "mathjax" / "es5" / "output" / "chtml" / "fonts").rglob("*.woff"))
    assert fonts, "no CHTML fonts copied"
    assert (tmp_path / "mathjax" / "es5" / "input" / "tex" / "extensions" / "ams.js").is_file()


# ---------------------------------------------------------------------------------------------
# The built pages, read statically


def _require_build() -> Path:
    if not (HTML / "index.html").is_file():
        pytest.skip(f"no built book at {HTML} (set BEA_HTML_BUILD, or build the smoke book: "
                    "python -m bea_book all --profile smoke --build-dir _build/smoke)")
    return HTML


def pages(html: Path) -> list[Path]:
    """Every HTML page of the book (not the copied sources or static assets, nor a page that
    only redirects to another, such as the top-level index.html)."""
    return sorted(p for p in html.rglob("*.html")
                  if not {"_static", "_sources", "_images"} & set(p.relative_to(html).parts)
                  and 'http-equiv="refresh"' not in p.read_text(encoding="utf-8")[:2000].lower())


def _soup(page: Path):
    from bs4 import BeautifulSoup

    return BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")


def prose_text(soup) -> str:
    """The page's visible text outside code, scripts and math elements, one string."""
    soup = _copy(soup)
    for tag in soup.find_all(TEXT_SKIP):
        tag.decompose()
    for tag in soup.find_all(class_=MATH_CLASS):
        tag.decompose()
    for tag in soup.find_all(class_="highlight"):
        tag.decompose()
    body = soup.find("main") or soup.body or soup
    return body.get_text(" ")


def _copy(soup):
    from bs4 import BeautifulSoup

    return BeautifulSoup(str(soup), "html.parser")


def markdown_tables_in_notebook(notebook: Path) -> int:
    """How many Markdown outputs of an executed notebook hold a table."""
    count = 0
    for cell in json.loads(notebook.read_text()).get("cells", []):
        for output in cell.get("outputs", []):
            text = output.get("data", {}).get("text/markdown", "")
            text = "".join(text) if isinstance(text, list) else text
            count += bool(RAW_TABLE.search(text))
    return count


def page_problems(page: Path, html: Path) -> list[str]:
    """What is wrong with one built page, as a list of sentences (empty when nothing is)."""
    soup = _soup(page)
    raw = page.read_text(encoding="utf-8")
    problems = []
    text = prose_text(soup)
    for pattern, what in ((RAW_TABLE_TEXT, "a Markdown table left as text"),
                          (RAW_MATH, "dollar math left as text"),
                          (UNRESOLVED_ROLE, "an unresolved role")):
        found = pattern.search(text)
        if found:
            start = max(found.start() - 40, 0)
            problems.append(f"{what}: ...{text[start:found.end() + 40]!r}...")
    if "Traceback (most recent call last)" in raw or soup.select(".output.traceback"):
        problems.append("a traceback")
    if soup.select(".output.stderr"):
        problems.append(f"{len(soup.select('.output.stderr'))} stderr output block(s)")
    stray = soup.select(".cell_output div.output.text_plain")
    if stray:
        problems.append(f"a cell's value shown as text (a stray expression or repr): "
                        f"{stray[0].get_text()[:80]!r}")
    for host in CDN_HOSTS:
        if host in raw:
            problems.append(f"a reference to {host}")
    for tag in soup.find_all(["script", "link", "img", "iframe", "source"]):
        url = tag.get("src") or tag.get("href") or ""
        if urlsplit(url).scheme in ("http", "https") or url.startswith("//"):
            problems.append(f"<{tag.name}> loads {url} from the network")
    for img in soup.find_all("img"):
        src = img.get("src", "")
        if src.startswith("data:"):
            continue
        target = (page.parent / unquote(urlsplit(src).path)).resolve()
        if not target.is_file() or target.stat().st_size == 0:
            problems.append(f"<img src={src!r}>: no such file, or empty")
    problems += _link_problems(soup, page, html)
    executed = html.parent / "executed" / page.relative_to(html).with_suffix(".ipynb")
    if executed.is_file():
        wanted = markdown_tables_in_notebook(executed)
        got = len(soup.select(".cell_output table"))
        if got < wanted:
            problems.append(f"{wanted} Markdown table outputs in the notebook, "
                            f"{got} <table> elements in the cell outputs")
    return problems


_IDS: dict[Path, set[str]] = {}


def _ids(page: Path) -> set[str]:
    if page not in _IDS:
        soup = _soup(page)
        _IDS[page] = {tag["id"] for tag in soup.find_all(id=True)} | {
            tag["name"] for tag in soup.find_all("a", attrs={"name": True})}
    return _IDS[page]


def _link_problems(soup, page: Path, html: Path) -> list[str]:
    problems = []
    for a in soup.find_all("a", href=True):
        href = a["href"]
        parts = urlsplit(href)
        if parts.scheme or href.startswith("//") or href.startswith("mailto:"):
            continue
        target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
        if not target.exists():
            problems.append(f"link {href!r}: no such file")
        elif parts.fragment and target.suffix == ".html" and parts.fragment not in _ids(target):
            problems.append(f"link {href!r}: no anchor #{parts.fragment}")
    return problems


def test_every_page_renders_statically():
    html = _require_build()
    found = {str(p.relative_to(html)): page_problems(p, html) for p in pages(html)}
    bad = {name: probs for name, probs in found.items() if probs}
    report = "\n".join(f"{name}:\n  " + "\n  ".join(probs) for name, probs in bad.items())
    assert not bad, f"{len(bad)} of {len(found)} pages have problems:\n{report}"


def test_chapters_have_tables_and_local_mathjax():
    """Result tables are HTML tables, and MathJax 3 is loaded from the book's own files."""
    html = _require_build()
    counts = {str(p.relative_to(html)): len(_soup(p).find_all("table")) for p in pages(html)}
    print("<table> elements per page:", json.dumps(counts, indent=1))
    entry = html / "_static" / "mathjax" / "es5" / "tex-mml-chtml.js"
    assert entry.is_file() and entry.stat().st_size > 100_000, f"no local MathJax at {entry}"
    with_math = [p for p in pages(html) if _soup(p).find(class_=MATH_CLASS)]
    assert with_math, "no page has math: the pages were not built as expected"
    for page in with_math:
        scripts = [s.get("src", "") for s in _soup(page).find_all("script")]
        assert any(s.endswith("_static/mathjax/es5/tex-mml-chtml.js") for s in scripts), (
            f"{page.name} does not load the local MathJax: {scripts}")


# ---------------------------------------------------------------------------------------------
# The built pages, in a real browser

INSTALL = ("the browser checks need Debian's chromium at /usr/bin/chromium (`apt-get install "
           "chromium`, or set BEA_CHROMIUM) and Playwright for Python (`pip install playwright`; "
           "no `playwright install` needed)")

# What a reader sees at a 1280 px window: the page height, the height of the code cells in sight
# (a cell folded in a closed <details> is out of sight), display formulas wider than the text
# column, text outside math and code that still holds TeX or a MyST role, and every figure of
# a cell output with its drawn and natural width.
MEASURE = r"""function measure() {
  const art = document.querySelector("article") || document.querySelector("main") || document.body;
  const col = art.getBoundingClientRect();
  let code = 0;
  for (const c of document.querySelectorAll("div.cell_input, div.highlight")) {
    const fold = c.closest("details");
    if (fold && !fold.open) continue;
    if (c.parentElement && c.parentElement.closest("div.cell_input")) continue;
    const r = c.getBoundingClientRect();
    if (r.height > 0 && r.width > 0) code += r.height;
  }
  const wide = [];
  for (const m of document.querySelectorAll('mjx-container[display="true"]')) {
    const r = m.getBoundingClientRect();
    if (m.scrollWidth > m.clientWidth + 2 || r.right > col.right + 2) {
      const src = m.closest(".math");
      const style = getComputedStyle(m);
      // a scroller inside the column whose background carries the scroll shadows (the cue)
      const cued = ["auto", "scroll"].includes(style.overflowX) && r.right <= col.right + 2
        && style.backgroundAttachment.includes("local") && style.backgroundImage !== "none";
      wide.push({width: Math.max(m.scrollWidth, r.width), column: col.width, cued,
                 tex: (src && src.dataset.tex) || (m.getAttribute("aria-label") || "")});
    }
  }
  const summaries = Array.from(document.querySelectorAll("div.SUMMARY_CLASS")).map(d => ({
    width: Math.max(d.scrollWidth, d.getBoundingClientRect().width), column: col.width,
    right: d.getBoundingClientRect().right, colRight: col.right}));
  const sideways = document.documentElement.scrollWidth - window.innerWidth;
  const raw = [];
  const walker = document.createTreeWalker(art, NodeFilter.SHOW_TEXT);
  let n;
  while ((n = walker.nextNode())) {
    const p = n.parentElement;
    if (!p || p.closest("mjx-container, pre, code, script, style, .cell_input, .MathJax")) continue;
    const t = n.textContent;
    if (RAW_TEX.test(t)) raw.push(t.trim().slice(0, 80));
  }
  const figures = Array.from(art.querySelectorAll("img")).map(img => ({
    src: img.src, shown: img.getBoundingClientRect().width, natural: img.naturalWidth}));
  // a fold ("Show code cell source") over a cell that shows nothing once folded
  const emptyFolds = Array.from(document.querySelectorAll("div.cell")).filter(cell => {
    const fold = cell.querySelector("details");
    if (!fold || !fold.querySelector("div.cell_input")) return false;
    const out = cell.querySelector("div.cell_output");
    return !out || !out.innerText.trim() && !out.querySelector("img, table");
  }).map(cell => cell.querySelector("div.cell_input").textContent.trim().slice(0, 60));
  return {height: document.documentElement.scrollHeight, code, wide, raw, figures, emptyFolds,
          column: col.width, summaries, sideways};
}""".replace("SUMMARY_CLASS", SUMMARY_CLASS)
# TeX commands, a "$...\" span or a MyST role left as text by the parser
RAW_TEX_JS = (r"const RAW_TEX = /\\(theta|nabla|beta|rho|varepsilon|frac|mathbf|boldsymbol|sqrt|"
              r"left|right|lVert|rVert|tfrac|dot|tilde|mathrm)\b|\{(cite|numref|eq|glue|doc|ref)"
              r"(:[a-z]+)?\}|\$[^$\s][^$]*\\/;")


# after MathJax has typeset the page: what is left untypeset or broken, and the images
CHECK_PAGE = """async () => {
  """ + RAW_TEX_JS + "\n" + MEASURE + """
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  const imgs = Array.from(document.images);
  for (const img of imgs) { img.loading = "eager"; }
  await Promise.all(imgs.map(img => img.decode().catch(() => null)));
  const math = Array.from(document.querySelectorAll(".math"));
  return {
    mathjax: !!(window.MathJax && MathJax.version),
    version: window.MathJax ? MathJax.version : null,
    math: math.length,
    untypeset: math.filter(el => !el.querySelector("mjx-container")).map(
        el => el.textContent.slice(0, 60)),
    merror: document.querySelectorAll("mjx-merror").length,
    images: imgs.length,
    broken: imgs.filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.src),
    ...measure(),
  };
}"""


def _launch(playwright):
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])


def browse(html: Path, shots: Path, width: int = 1280) -> dict[str, list[str]]:
    """Open every page from disk with the network blocked, in a window ``width`` px wide;
    page -> problems found."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    shots.mkdir(parents=True, exist_ok=True)
    found, metrics = {}, {}
    with sync_playwright() as playwright:
        browser = _launch(playwright)
        context = browser.new_context(viewport={"width": width, "height": 900})
        # anything that is not a local file is aborted (and then reported as a failed request)
        context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
            "file:") else route.abort())
        for page_path in pages(html):
            name = str(page_path.relative_to(html))
            problems: list[str] = []
            page = context.new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.on("console", lambda msg, p=problems: p.append(
                f"console error: {msg.text}") if msg.type == "error" else None)
            page.on("pageerror", lambda err, p=problems: p.append(f"page error: {err}"))
            page.on("requestfailed", lambda req, p=problems: p.append(
                f"failed request: {req.url} ({req.failure})"))
            try:
                page.goto(page_path.as_uri(), wait_until="load")
                state = page.evaluate(CHECK_PAGE)
            except PlaywrightError as err:  # a timeout: MathJax or an image never finished
                found[name] = [*problems, f"the page did not finish loading: {err.message}"]
                page.close()
                continue
            if state["math"] and not state["mathjax"]:
                problems.append(f"MathJax did not load; {state['math']} formulas raw")
            if state["untypeset"]:
                problems.append(f"{len(state['untypeset'])} of {state['math']} formulas not "
                                f"typeset, e.g. {state['untypeset'][0]!r}")
            if state["merror"]:
                problems.append(f"{state['merror']} MathJax errors (mjx-merror)")
            if state["broken"]:
                problems.append(f"images not loaded: {state['broken']}")
            problems += (reading_problems(state) if width > PHONE_MAX else phone_problems(state))
            metrics[name] = {key: state[key] for key in ("height", "code", "column")} | {
                "wide": len(state["wide"]), "raw": len(state["raw"]),
                "wide_cued": sum(f["cued"] for f in state["wide"]),
                "min_figure_text_px": min((t for _, t in figure_text_px(state["figures"]) if t),
                                          default=None)}
            shot = shots / (name.replace("/", "__").removesuffix(".html") + ".png")
            page.screenshot(path=str(shot), full_page=True)
            page.close()
            found[name] = problems
        browser.close()
    (shots / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return found


PHONE_MAX = 640  # px: at most this wide, a window is a phone's (bea_book/static/code.css)


def phone_problems(state: dict) -> list[str]:
    """The page against what a phone needs (module docstring): no sideways scroll of the
    page, the summary table within the column, wide formulas scrolling with their cue, no TeX
    left as text."""
    problems = []
    if state["sideways"] > 2:
        problems.append(f"the page scrolls sideways by {state['sideways']} px")
    for table in state["summaries"]:
        if table["width"] > table["column"] + 2 or table["right"] > table["colRight"] + 2:
            problems.append(f"the summary table is {table['width']:.0f} px wide in a "
                            f"{table['column']:.0f} px column")
    for formula in state["wide"]:
        if not formula["cued"]:
            problems.append(f"a display formula {formula['width']:.0f} px wide in a "
                            f"{formula['column']:.0f} px column is cut without a scroll cue: "
                            f"{formula['tex'][:70]!r}")
    for text in state["raw"]:
        problems.append(f"TeX or a role left as text: {text!r}")
    return problems


def figure_text_px(figures: list[dict]) -> list[tuple[str, float | None]]:
    """(image, its smallest text in CSS px as drawn) for each figure of the cell outputs; None
    when the PNG does not record its text size (it was not saved by bea_lib.figures.plotting)."""
    from PIL import Image

    from bea_lib.figures.plotting import METADATA_KEY

    found = []
    for fig in figures:
        path = Path(unquote(urlsplit(fig["src"]).path))
        with Image.open(path) as im:
            recorded = im.info.get(METADATA_KEY)
        scale = fig["shown"] / max(fig["natural"], 1)
        found.append((path.name, None if recorded is None else float(recorded) * scale))
    return found


def reading_problems(state: dict) -> list[str]:
    """The page against the limits of a page a reader reads at 1280 px (see the constants)."""
    from bea_lib.figures.plotting import MIN_TEXT_PX

    problems = []
    if state["height"] > MAX_HEIGHT_PX:
        problems.append(f"{state['height']} px tall (at most {MAX_HEIGHT_PX})")
    share = state["code"] / max(state["height"], 1)
    if share > MAX_CODE_SHARE:
        problems.append(f"code in sight takes {share:.0%} of the page (at most "
                        f"{MAX_CODE_SHARE:.0%})")
    for formula in state["wide"]:
        problems.append(f"a display formula {formula['width']:.0f} px wide in a "
                        f"{formula['column']:.0f} px column: {formula['tex'][:70]!r}")
    for text in state["raw"]:
        problems.append(f"TeX or a role left as text: {text!r}")
    for source in state["emptyFolds"]:
        problems.append(f"a fold over a cell with nothing to show (tag it remove-input): "
                        f"{source!r}")
    for name, px in figure_text_px(state["figures"]):
        if px is None:
            problems.append(f"figure {name}: no text-size record (show it with "
                            "bea_lib.figures.plotting.show_figure)")
        elif px < MIN_TEXT_PX:
            problems.append(f"figure {name}: smallest text {px:.1f} px (at least {MIN_TEXT_PX})")
    return problems


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_in_a_browser_offline(width):
    html = _require_build()
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no chromium at {CHROMIUM}: {INSTALL}")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip(f"Playwright is not installed: {INSTALL}")
    shots = html.parent / "screenshots" / ("" if width == WIDTHS[0] else str(width))
    if width == WIDTHS[0]:  # the laptop's screenshots at the top, the phone's in a subfolder
        for old in shots.glob("*.png"):
            old.unlink()
    else:
        shutil.rmtree(shots, ignore_errors=True)
    start = time.perf_counter()
    found = browse(html, shots, width)
    print(f"browser check of {len(found)} pages at {width} px in "
          f"{time.perf_counter() - start:.1f} s; screenshots in {shots}")
    bad = {name: probs for name, probs in found.items() if probs}
    report = "\n".join(f"{name}:\n  " + "\n  ".join(probs[:8]) for name, probs in bad.items())
    assert not bad, (f"{len(bad)} of {len(found)} pages fail in the browser at {width} px:\n"
                     f"{report}")
