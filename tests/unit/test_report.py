"""capsim.report and `capsim report`: one self-contained page, and a browser that loads it.

The browser test opens the page in headless Chromium (Debian's ``chromium``, which
``.ci/run`` installs) and skips only where that binary is missing.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from test_plot import make_run, write_sweep

from capsim.cli import main
from capsim.report import render, report


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("report") / "run")


@pytest.fixture(scope="module")
def run_page(run_dir, tmp_path_factory):
    return report(run_dir, tmp_path_factory.mktemp("report") / "page.html")


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    return write_sweep(tmp_path_factory.mktemp("report") / "sweep")


class Page(HTMLParser):
    """What a page holds: tags, image sources, links, table rows (as cell texts)."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[str] = []
        self.images: list[dict[str, str]] = []
        self.references: list[str] = []
        self.rows: list[list[str]] = []
        self.headings: list[str] = []
        self._cell: list[str] | None = None
        self._heading: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.images.append(attrs)
        for name in ("src", "href"):
            if attrs.get(name) is not None:
                self.references.append(attrs[name])
        if tag == "tr":
            self.rows.append([])
        if tag in ("td", "th"):
            self._cell = []
        if tag in ("h1", "h2", "h3"):
            self._heading = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None
        if tag in ("h1", "h2", "h3") and self._heading is not None:
            self.headings.append("".join(self._heading).strip())
            self._heading = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._heading is not None:
            self._heading.append(data)


def row(page: Page, first: str) -> list[str]:
    return next(r for r in page.rows if r and r[0] == first)


def assert_self_contained(page: Page) -> None:
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    for reference in page.references:
        assert reference.startswith(("data:image/png;base64,", "#")), reference[:60]


def test_run_report_holds_the_summary_tables_and_four_plots(run_dir, run_page):
    summary = json.loads((run_dir / "summary.json").read_text())
    text = run_page.read_text()
    page = Page(text)
    assert_self_contained(page)
    # The timeline, latency, t-visibility and (a --trace run) messages plots.
    assert [img["alt"] for img in page.images] == [
        "timeline",
        "latency",
        "t-visibility",
        "messages",
    ]
    for img in page.images:
        png = base64.b64decode(img["src"].split(",", 1)[1])
        width, height = struct.unpack(">II", png[16:24])
        assert (img["width"], img["height"]) == (str(width), str(height))
    assert summary["scenario"] in page.headings
    ops = summary["ops"]
    assert row(page, "main")[1:] == [f"{ops[k]:,}" for k in ("total", "ok", "fail", "info")]
    # The partition: one window from 1 s to 2 s, during which 4 of 6 clients were served.
    fault = row(page, "0")
    assert fault[1:4] == ["partition", "1", "2"]
    assert float(fault[4]) == pytest.approx(summary["faults"]["windows"][0]["availability"], 1e-3)
    assert float(row(page, "minority side of a partition")[1]) == 0.0
    assert float(row(page, "majority side of a partition")[1]) == 1.0
    assert row(page, "linearizable")[1] == "yes"


def test_sweep_report_tabulates_cells_with_intervals_and_failed_runs(sweep_dir, tmp_path):
    out = report(sweep_dir, tmp_path / "sweep.html")
    page = Page(out.read_text())
    assert_self_contained(page)
    header = next(r for r in page.rows if r and r[0] == "cell" and "seeds" in r)
    cells = [r for r in page.rows if r[0].isdigit() and len(r) == len(header)]
    assert [r[0] for r in cells] == ["0", "1", "2", "3", "4", "5"]
    stale = header.index("staleness.stale_read_fraction")
    # Cell 2: a stale-read fraction of 0.08 with its interval 0.06 to 0.1.
    assert cells[2][stale] == "0.08[0.06, 0.1]"
    assert cells[2][1:3] == ["quorum {r: 1, w: 1}", "2s"]
    # The failed run, cell 5 with seed 2, with its grid values and its error.
    assert [r[3:] for r in page.rows if r[:3] == ["5", "2", "failed"]] == [
        ["quorum {r: 2, w: 2}", "5s", "ValueError: boom at t=1.2 s"]
    ]
    alts = [img["alt"] for img in page.images]
    assert alts == [
        "tradeoff of availability.by_side.minority against staleness.stale_read_fraction",
        "tradeoff of availability.overall against staleness.stale_read_fraction",
        "latency per cell",
        "t-visibility per cell",
    ]
    assert render(sweep_dir) == out.read_text()


def test_report_default_output_and_bad_input(run_dir, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "messages.jsonl").unlink()  # without --trace: no diagram, a note instead
    assert main(["report", str(copy)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {copy / 'report.html'}"
    page = Page((copy / "report.html").read_text())
    assert [img["alt"] for img in page.images] == ["timeline", "latency", "t-visibility"]
    assert "capsim run --trace" in (copy / "report.html").read_text()
    capsys.readouterr()
    empty = tmp_path / "empty"
    empty.mkdir()
    for args, words in (
        ([str(empty)], "neither a run folder"),
        ([str(tmp_path / "nope")], "no such folder"),
        ([str(copy), "--out", str(tmp_path / "r.txt")], "must end in .html"),
        ([str(copy), "--out", str(tmp_path / "no" / "r.html")], "does not exist"),
    ):
        assert main(["report", *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("capsim: error: ") and words in err[0]
    assert not (tmp_path / "r.txt").exists() and not (empty / "report.html").exists()


# --- in a browser -----------------------------------------------------------------------------

PROBE = """<script>
window.__errors = [];
window.addEventListener("error", function (e) {
  window.__errors.push(e.message || ("failed to load " + (e.target && e.target.src || "?")));
}, true);
["error", "warn"].forEach(function (level) {
  var original = console[level];
  console[level] = function () {
    window.__errors.push(level + ": " + Array.prototype.join.call(arguments, " "));
    original.apply(console, arguments);
  };
});
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
  document.title = "PROBE " + JSON.stringify({
    images: images.length,
    broken: broken.map(function (i) { return i.alt; }),
    errors: window.__errors
  });
});
</script>"""


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="no chromium (apt-get install chromium)"
)
def test_the_report_opens_in_chromium_with_every_image_and_no_error(run_page, tmp_path):
    page = run_page
    # The page itself has no script; a copy gets one that reports what the browser saw
    # (in the title, which --dump-dom prints once the page has loaded).
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</head>", PROBE + "\n</head>", 1))
    result = chromium("--dump-dom", probe.as_uri(), profile=tmp_path / "profile")
    found = re.search(r"<title>PROBE (.*?)</title>", result.stdout)
    assert found, result.stderr[-2000:]
    seen = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert seen["images"] == 4 and seen["broken"] == []
    assert seen["errors"] == []
    # Messages the page logged to the console (none expected: it runs no code).
    assert "CONSOLE" not in result.stderr, result.stderr
    # And a screenshot of the page as a reader sees it (no probe).
    shot = tmp_path / "report.png"
    result = chromium(
        f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri(), profile=tmp_path / "p2"
    )
    assert shot.exists(), result.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG") and struct.unpack(">II", data[16:24]) == (1280, 2000)
    assert "CONSOLE" not in result.stderr
