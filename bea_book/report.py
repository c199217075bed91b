"""The execution report page, generated at render time from the build folder's runs."""
from __future__ import annotations

import posixpath

DOWNLOADS = (".pdf", ".csv")  # what a chapter wrote that a reader may want: figures, run tables
DOWNLOAD_DIR = "downloads"  # staged beside the pages as downloads/<chapter>/<file> (render)


def _cell(text) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|")


def _claims(counts: dict) -> str:
    if not counts or not any(counts.values()):
        return "none"
    text = f"{counts.get('passed', 0)} ✓"
    if counts.get("failed"):
        text += f", **{counts['failed']} ⚠**"
    if counts.get("measured"):
        text += f", {counts['measured']} measured"
    if counts.get("not_checked"):
        text += f", {counts['not_checked']} not checked"
    return text


def _commit(label: str) -> str:
    return f"`{label[:12]}{'-dirty' if label.endswith('-dirty') else ''}`"


def _span_s(records: list[dict]) -> float:
    """Seconds from the earliest ``started`` to the latest ``finished`` of ``records``."""
    from datetime import datetime

    starts = [datetime.fromisoformat(r["started"]) for r in records]
    ends = [datetime.fromisoformat(r["finished"]) for r in records]
    return (max(ends) - min(starts)).total_seconds()


def report_markdown(report: dict, pages: dict[str, str], *, version: str = "unknown") -> str:
    """The MyST page that shows how each chapter of the rendered book was executed.

    ``report`` maps a chapter to the record of its current run (``report.json``); chapters of
    ``pages`` without one are listed as not run in this build.
    """
    lines = [
        "# Execution report",
        "",
        "Every number and figure in this book was computed when the book was built. This page,",
        "generated at render time from the runs in the build folder, records how each chapter",
        "was last executed: whether this build executed it or reused an earlier run whose",
        "inputs (source, parameters, `bea_lib`, lock file) were unchanged, its profile, the wall",
        "time, the checked claims (✓ held, ⚠ did not hold) and the commit of the sources",
        "(`-dirty` when they had uncommitted changes); then each chapter's parameter values (in",
        "bold those set by the profile or on the command line) and the versions of the software.",
        "",
    ]
    rows = [name for name in pages if name in report]
    if not rows:
        return "\n".join([*lines, "No chapter has been executed yet.", ""])
    locks = {report[n].get("lock_sha256") for n in rows}
    lock = ", ".join(f"`{h[:16]}`" if h else "none" for h in sorted(locks, key=str))
    lines += [f"Book version **{version}**; SHA-256 of the lock file `requirements.lock`: "
              f"{lock}.", ""]
    lines += [
        "| chapter | this build | profile | wall time | claims | finished (UTC) | commit |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in pages:
        if name not in report:
            lines.append(f"| {{doc}}`{name} </{pages[name]}>` | not run in this build "
                         "| | | | | |")
            continue
        rec = report[name]
        lines.append(
            f"| {{doc}}`{name} </{pages[name]}>` | {rec.get('action', 'executed')} "
            f"| {rec['profile']} | {rec['wall_time_s']:.1f} s | {_claims(rec.get('claims'))} "
            f"| {rec['finished'][:16].replace('T', ' ')} | {_commit(rec['commit'])} |")
    total = sum(report[n]["wall_time_s"] for n in rows)
    executed = [n for n in rows if report[n].get("action", "executed") == "executed"]
    lines += ["", f"Total execution time of the runs shown: {total:.1f} s; the last build "
              f"executed {len(executed)} of them "
              f"({sum(report[n]['wall_time_s'] for n in executed):.1f} s) and reused "
              f"{len(rows) - len(executed)}."]
    together = [n for n in executed if (report[n].get("jobs") or 1) > 1]
    if together:
        span = _span_s([report[n] for n in executed])
        jobs = max(report[n]["jobs"] for n in together)
        lines[-1] += (f" It executed up to {jobs} chapters side by side, so their wall times "
                      f"overlap: from the first start to the last finish {span:.0f} s "
                      "(to the second).")
    lines += ["", "## Parameters", ""]
    for name in rows:
        lines += _parameters_fold(name, report[name])
    lines += _downloads(report, pages, rows)
    failed = [(n, c) for n in rows for c in report[n].get("failed_claims", [])]
    if failed:
        lines += ["", "## Claims that did not hold", "",
                  "| chapter | claim | paper | measured |", "| --- | --- | --- | --- |"]
        lines += [f"| {n} | {_cell(c['statement'])} (`{c['id']}`) | {_cell(c['paper'])} "
                  f"| {_cell(c['measured'])} |" for n, c in failed]
    packages = list(dict.fromkeys(p for n in rows for p in report[n]["versions"]))
    same = all(report[n]["versions"] == report[rows[0]]["versions"] for n in rows)
    heads = ["version"] if same else rows  # one column when every chapter ran the same software
    lines += ["", "## Software", "", "| package | " + " | ".join(heads) + " |",
              "| --- " * (len(heads) + 1) + "|"]
    for package in packages:
        found = [report[n]["versions"].get(package, "") for n in (rows[:1] if same else rows)]
        lines.append(f"| {package} | " + " | ".join(_cell(v) for v in found) + " |")
    return "\n".join([*lines, ""])


def _downloads(report: dict, pages: dict[str, str], rows: list[str],
               here: str = "book") -> list[str]:
    """The files each chapter wrote that a reader may take away (figures as PDF, per-run
    tables as CSV), as download links; ``here`` is the report page's folder."""
    found = []
    for name in rows:
        files = sorted(f for f in report[name].get("files", {}) if f.endswith(DOWNLOADS))
        if files:
            folder = posixpath.dirname(pages[name])
            links = [f"{{download}}`{posixpath.basename(f)} <"
                     f"{posixpath.relpath(posixpath.join(folder, DOWNLOAD_DIR, name, f), here)}>`"
                     for f in files]
            found.append(f"| {{doc}}`{name} </{pages[name]}>` | {', '.join(links)} |")
    if not found:
        return []
    return ["", "## Downloads", "",
            "The files each chapter wrote as it ran: its figures as PDF (vector graphics, for a "
            "paper or a slide) and its per-run tables as CSV (every verdict of a network chapter "
            "is computed from its table, so anyone can recompute it).", "",
            "| chapter | files |", "| --- | --- |", *found]


def _parameters_fold(name: str, rec: dict) -> list[str]:
    """A chapter's parameter values in a fold whose title names the ones set for this run."""
    shown, changed = [], []
    for key in rec.get("parameter_order") or rec["parameters"]:
        item = f"`{key} = {rec['parameters'][key]!r}`"
        shown.append(f"**{item}**" if key in rec["overrides"] else item)
        if key in rec["overrides"]:
            changed.append(key)
    title = (f"{name} ({rec['profile']}): {len(shown)} parameters"
             + (f", set for this run: {', '.join(changed)}" if changed else ", all defaults"))
    if not shown:  # an admonition needs a body; a chapter without parameters gets a line
        return [f"{name} ({rec['profile']}): no parameters.", ""]
    return ["````{admonition} " + title, ":class: dropdown", "", ", ".join(shown), "````", ""]


def not_run_markdown(title: str, chapter: str) -> str:
    """The page that stands for a chapter that has not been run in this build folder."""
    return "\n".join([
        f"# {title}",
        "",
        "```{note}",
        "This chapter was not run in this build. To see it, run it and render the book again:",
        "",
        f"`python -m bea_book run {chapter} --build-dir BUILD && "
        "python -m bea_book render --build-dir BUILD`",
        "",
        "(`BUILD` being this build's folder), or build the whole book with `make book`.",
        "```",
        "",
    ])
