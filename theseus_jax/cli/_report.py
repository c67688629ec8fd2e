"""``theseus report RESULTS_DIR``: one self-contained HTML page (and Markdown) from result folders.

A result folder is what ``experiments/NAME.py`` writes (see ``experiments/_common.py``): CSV
tables, PNG+SVG figures and a ``manifest.json`` written last. ``build_report`` reads the folders
and returns the two documents as strings; ``run`` writes them.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import os
import re
from collections import Counter
from pathlib import Path

#: Sections come in this order, then any other experiment alphabetically.
CANONICAL_ORDER = (
    "train_vs_gpu",
    "train_vs_wsc",
    "inference_vs_baselines",
    "case_studies",
    "dse_efficiency",
    "fidelity_agreement",
)
REQUIRED_KEYS = ("experiment", "title", "command")
CLAIM_KEYS = ("claim", "paper", "ours", "interval", "verdict", "why")
MAX_ROWS = 40
MANIFEST = "manifest.json"

_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
line-height:1.45;color:#222}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f2f2f2}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto}
code{background:#f6f6f6}
figure{margin:1em 0}
img{max-width:100%}
figcaption,.caption{color:#555;font-size:.9em}
.missing,.error{color:#b00020;font-weight:bold}
.meta td:first-child{font-weight:bold}
"""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "report",
        help="build one self-contained HTML page (and a Markdown file) from result folders",
        description="Read RESULTS_DIR (one experiment folder with a manifest.json, or a parent "
        "of such folders) and write a single HTML page with every claim, figure (embedded) and "
        "table, plus a Markdown version beside it (same stem, .md).",
    )
    p.add_argument("results_dir", help="experiment result folder, or a parent of several")
    p.add_argument(
        "--out",
        default=None,
        help="HTML file to write (default RESULTS_DIR/report.html); the .md goes beside it",
    )


def run(args) -> int:
    results_dir = Path(args.results_dir)
    html_path = Path(args.out) if args.out else results_dir / "report.html"
    md_path = html_path.with_suffix(".md")
    if md_path == html_path:
        raise ValueError(f"--out {html_path} ends in .md; give the HTML path, e.g. report.html")
    page, md = build_report(results_dir, md_dir=md_path.parent)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(page, encoding="utf-8")
    md_path.write_text(md, encoding="utf-8")
    print(f"wrote {html_path}")
    print(f"wrote {md_path}")
    return 0


# ----------------------------------------------------------------------------- loading


def _find_folders(results_dir: Path) -> list[Path]:
    """The experiment folders under ``results_dir``: itself, or its immediate subfolders."""
    if not results_dir.is_dir():
        raise FileNotFoundError(f"results folder {results_dir} does not exist")
    if (results_dir / MANIFEST).exists():
        return [results_dir]
    subs = [d for d in sorted(results_dir.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    if not any((d / MANIFEST).exists() for d in subs):
        raise ValueError(
            f"no {MANIFEST} in {results_dir} or its immediate subfolders; produce one with "
            f"`python experiments/NAME.py --smoke --out {results_dir}/NAME`"
        )
    # a subfolder without a manifest is an unfinished experiment only if it holds what an
    # experiment writes (tables or figures); others are data (e.g. shared exploration runs)
    return [d for d in subs if (d / MANIFEST).exists() or _has_outputs(d)]


def _has_outputs(folder: Path) -> bool:
    return any(p.suffix in (".csv", ".png", ".svg") for p in folder.iterdir() if p.is_file())


def _load(folder: Path) -> dict:
    """One section: ``{"name", "folder", "status": ok|unfinished|error, "manifest", "error"}``."""
    sec = {"name": folder.name, "folder": folder, "manifest": None, "error": ""}
    path = folder / MANIFEST
    if not path.exists():
        return {**sec, "status": "unfinished"}
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return {**sec, "status": "error", "error": f"cannot read {MANIFEST}: {e}"}
    if not isinstance(m, dict):
        return {**sec, "status": "error", "error": f"cannot read {MANIFEST}: not a JSON object"}
    missing = [k for k in REQUIRED_KEYS if k not in m]
    if missing:
        return {
            **sec,
            "status": "error",
            "error": f"cannot read {MANIFEST}: missing required keys {missing}",
        }
    return {**sec, "name": str(m["experiment"]), "status": "ok", "manifest": m}


def _order_key(sec: dict) -> tuple:
    name = sec["name"]
    if name in CANONICAL_ORDER:
        return (0, CANONICAL_ORDER.index(name), "")
    return (1, 0, name)


def _list(m: dict, key: str) -> list:
    v = m.get(key) or []
    return v if isinstance(v, list) else [v]


def _claims(m: dict) -> list[dict]:
    out = []
    for c in _list(m, "claims"):
        c = c if isinstance(c, dict) else {"claim": c}
        out.append({k: str(c.get(k, "")) for k in CLAIM_KEYS})
    return out


def _entries(m: dict, key: str) -> list[dict]:
    """Manifest ``tables`` / ``figures`` entries as dicts with at least ``file``."""
    return [e if isinstance(e, dict) else {"file": str(e)} for e in _list(m, key)]


def _resolve(folder: Path, file) -> Path | None:
    """``folder/file`` when it exists inside ``folder``; ``None`` otherwise."""
    if not file:
        return None
    p = (folder / str(file)).resolve()
    root = folder.resolve()
    if p != root and root not in p.parents:
        return None
    return p if p.is_file() else None


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    return (rows[0], rows[1:]) if rows else ([], [])


def _anchor(name: str) -> str:
    return "exp-" + re.sub(r"[^A-Za-z0-9_-]+", "-", name)


def _fmt_wall(v) -> str:
    return f"{v:.1f} s" if isinstance(v, int | float) else str(v)


# ----------------------------------------------------------------------------- HTML


def _esc(v) -> str:
    return html.escape(str(v))


def _inline(text) -> str:
    """Escaped text with Markdown ``code`` and **bold** turned into tags."""
    s = _esc(text)
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", s)


def _paragraphs(text) -> str:
    parts = [p.strip() for p in re.split(r"\n\s*\n", str(text or "")) if p.strip()]
    return "".join(f"<p>{_inline(p)}</p>\n" for p in parts)


def _html_table(header, rows) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in r) + "</tr>\n" for r in rows)
    return f"<table>\n<tr>{head}</tr>\n{body}</table>\n"


def _html_figure(folder: Path, fig: dict) -> str:
    caption = fig.get("caption", "")
    svg = fig.get("svg")
    png, vec = _resolve(folder, fig.get("file")), _resolve(folder, svg)
    if png is not None:
        data, mime = png.read_bytes(), "image/png"
    elif vec is not None:  # no PNG: embed the SVG instead
        data, mime = vec.read_bytes(), "image/svg+xml"
    else:
        return f'<p class="missing">missing: {_esc(fig.get("file", ""))}</p>\n'
    uri = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    vector = f" (vector: {_esc(svg)})" if svg else ""
    return (
        f'<figure><img src="{uri}" alt="{_esc(caption)}">'
        f"<figcaption>{_inline(caption)}{vector}</figcaption></figure>\n"
    )


def _html_csv(folder: Path, tab: dict) -> str:
    file = tab.get("file", "")
    path = _resolve(folder, file)
    if path is None:
        return f'<p class="missing">missing: {_esc(file)}</p>\n'
    header, rows = _read_csv(path)
    out = f'<p class="caption">{_inline(tab.get("caption", ""))} ({_esc(file)})</p>\n'
    out += _html_table(header, rows[:MAX_ROWS])
    if len(rows) > MAX_ROWS:
        out += f"<p>{len(rows) - MAX_ROWS} more rows in {_esc(file)}</p>\n"
    return out


def _html_section(sec: dict) -> str:
    name, folder = sec["name"], sec["folder"]
    out = f'<section id="{_anchor(name)}">\n'
    if sec["status"] == "unfinished":
        return out + f"<h2>{_esc(name)}</h2>\n<p>unfinished (no {MANIFEST})</p>\n</section>\n"
    if sec["status"] == "error":
        return (
            out + f'<h2>{_esc(name)}</h2>\n<p class="error">{_esc(sec["error"])}</p>\n</section>\n'
        )
    m = sec["manifest"]
    out += f"<h2>{_esc(m['title'])} <small>({_esc(name)})</small></h2>\n"
    out += f"<pre><code>{_esc(m['command'])}</code></pre>\n"
    meta = [
        ("scale", m.get("scale", "")),
        ("wall time", _fmt_wall(m.get("wall_s", ""))),
        ("machine", m.get("machine", "")),
        ("created", m.get("created", "")),
    ]
    out += '<table class="meta">\n'
    out += "".join(f"<tr><td>{k}</td><td>{_esc(v)}</td></tr>\n" for k, v in meta)
    out += "</table>\n"
    out += _paragraphs(m.get("summary", ""))
    claims = _claims(m)
    if claims:
        out += "<h3>Claims</h3>\n"
        out += _html_table(CLAIM_KEYS, [[c[k] for k in CLAIM_KEYS] for c in claims])
    figures = _entries(m, "figures")
    if figures:
        out += "<h3>Figures</h3>\n" + "".join(_html_figure(folder, f) for f in figures)
    tables = _entries(m, "tables")
    if tables:
        out += "<h3>Tables</h3>\n" + "".join(_html_csv(folder, t) for t in tables)
    notes = [str(n) for n in _list(m, "notes")]
    if notes:
        out += "<h3>Notes</h3>\n<ul>\n" + "".join(f"<li>{_inline(n)}</li>\n" for n in notes)
        out += "</ul>\n"
    return out + "</section>\n"


def _status_line(sec: dict) -> str:
    if sec["status"] == "ok":
        return sec["manifest"]["title"]
    if sec["status"] == "unfinished":
        return f"unfinished (no {MANIFEST})"
    return "cannot be read"


def _all_claims(sections: list[dict]) -> list[list[str]]:
    keys = CLAIM_KEYS[:-1]  # the overview leaves out "why"
    return [
        [s["name"], *(c[k] for k in keys)]
        for s in sections
        if s["status"] == "ok"
        for c in _claims(s["manifest"])
    ]


def _verdict_counts(rows: list[list[str]]) -> str:
    counts = Counter(r[-1] or "(no verdict)" for r in rows)
    head = f"{len(rows)} claim{'' if len(rows) == 1 else 's'}: "
    return head + ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))


def _html(title: str, sections: list[dict]) -> str:
    out = [
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n",
        f"<title>{_esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n",
        f"<h1>{_esc(title)}</h1>\n<ul>\n",
    ]
    for s in sections:
        out.append(
            f'<li><a href="#{_anchor(s["name"])}">{_esc(s["name"])}</a>: '
            f"{_esc(_status_line(s))}</li>\n"
        )
    out.append("</ul>\n<h2>All claims</h2>\n")
    rows = _all_claims(sections)
    if rows:
        out.append(f"<p>{_esc(_verdict_counts(rows))}</p>\n")
        out.append(_html_table(("experiment", *CLAIM_KEYS[:-1]), rows))
    else:
        out.append("<p>no claims recorded</p>\n")
    out += [_html_section(s) for s in sections]
    out.append("</body>\n</html>\n")
    return "".join(out)


# ----------------------------------------------------------------------------- Markdown


def _md_cell(v) -> str:
    s = " ".join(str(v).split())
    return s.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")


def _md_table(header, rows) -> str:
    width = max([len(header), *(len(r) for r in rows)]) if header or rows else 0
    header = list(header) + [""] * (width - len(header))
    lines = [
        "| " + " | ".join(_md_cell(h) for h in header) + " |",
        "|" + "---|" * width,
    ]
    for r in rows:
        r = list(r) + [""] * (width - len(r))
        lines.append("| " + " | ".join(_md_cell(c) for c in r) + " |")
    return "\n".join(lines) + "\n\n"


def _rel(path: Path, md_dir: Path) -> str:
    try:
        return Path(os.path.relpath(path, md_dir.resolve())).as_posix()
    except ValueError:  # another drive (Windows): no relative path exists
        return path.as_posix()


def _md_section(sec: dict, md_dir: Path) -> str:
    name, folder = sec["name"], sec["folder"]
    if sec["status"] == "unfinished":
        return f"## {name}\n\nunfinished (no {MANIFEST})\n\n"
    if sec["status"] == "error":
        return f"## {name}\n\n**{_md_cell(sec['error'])}**\n\n"
    m = sec["manifest"]
    out = f"## {_md_cell(m['title'])} ({name})\n\n"
    out += f"```\n{m['command']}\n```\n\n"
    out += (
        f"- scale: {_md_cell(m.get('scale', ''))}\n"
        f"- wall time: {_fmt_wall(m.get('wall_s', ''))}\n"
        f"- machine: {_md_cell(m.get('machine', ''))}\n"
        f"- created: {_md_cell(m.get('created', ''))}\n\n"
    )
    summary = str(m.get("summary") or "").strip()
    if summary:
        out += summary + "\n\n"
    claims = _claims(m)
    if claims:
        out += "### Claims\n\n"
        out += _md_table(CLAIM_KEYS, [[c[k] for k in CLAIM_KEYS] for c in claims])
    figures = _entries(m, "figures")
    if figures:
        out += "### Figures\n\n"
    for f in figures:
        path = _resolve(folder, f.get("file")) or _resolve(folder, f.get("svg"))
        if path is None:
            out += f"**missing: {_md_cell(f.get('file', ''))}**\n\n"
            continue
        caption = _md_cell(f.get("caption", ""))
        out += f"![{caption}]({_rel(path, md_dir)})\n\n*{caption}*\n\n"
    tables = _entries(m, "tables")
    if tables:
        out += "### Tables\n\n"
    for t in tables:
        file = t.get("file", "")
        path = _resolve(folder, file)
        if path is None:
            out += f"**missing: {_md_cell(file)}**\n\n"
            continue
        header, rows = _read_csv(path)
        out += f"{_md_cell(t.get('caption', ''))} ([{_md_cell(file)}]({_rel(path, md_dir)}))\n\n"
        out += _md_table(header, rows[:MAX_ROWS])
        if len(rows) > MAX_ROWS:
            out += f"{len(rows) - MAX_ROWS} more rows in {_md_cell(file)}\n\n"
    notes = [str(n) for n in _list(m, "notes")]
    if notes:
        out += "### Notes\n\n" + "".join(f"- {n}\n" for n in notes) + "\n"
    return out


def _markdown(title: str, sections: list[dict], md_dir: Path) -> str:
    out = [f"# {title}\n\n"]
    out += [
        f"- [{s['name']}](#{_anchor(s['name'])}): {_md_cell(_status_line(s))}\n" for s in sections
    ]
    out.append("\n## All claims\n\n")
    rows = _all_claims(sections)
    if rows:
        out.append(f"{_md_cell(_verdict_counts(rows))}\n\n")
        out.append(_md_table(("experiment", *CLAIM_KEYS[:-1]), rows))
    else:
        out.append("no claims recorded\n\n")
    for s in sections:
        out.append(f'<a name="{_anchor(s["name"])}"></a>\n\n')
        out.append(_md_section(s, md_dir))
    return "".join(out)


# ----------------------------------------------------------------------------- entry


def build_report(results_dir, md_dir=None) -> tuple[str, str]:
    """Build the report of the result folders under ``results_dir``; writes nothing.

    Args:
        results_dir: one experiment folder (holding ``manifest.json``) or a parent whose
            immediate subfolders are experiment folders.
        md_dir: folder the Markdown file will be written to; its figure and table links are
            relative to it (default ``results_dir``).

    Returns:
        ``(html, markdown)``: a self-contained HTML page (figures embedded as base64 data URIs,
        inline CSS, no external resources) and the same content as Markdown.

    Raises:
        FileNotFoundError: ``results_dir`` does not exist.
        ValueError: no ``manifest.json`` in ``results_dir`` or its immediate subfolders.
    """
    results_dir = Path(results_dir)
    md_dir = Path(md_dir) if md_dir is not None else results_dir
    sections = sorted((_load(f) for f in _find_folders(results_dir)), key=_order_key)
    title = f"Results report: {results_dir.resolve().name}"
    return _html(title, sections), _markdown(title, sections, md_dir)
