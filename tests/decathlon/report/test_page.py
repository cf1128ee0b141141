"""The leaderboard page (index.html): tables from the leaderboard data, cost cells, escaping,
SYNTHETIC headings, reported vs reproduced, a self-contained file; rendered in headless
Chromium (sorting from the address, a screenshot) where Chromium is installed."""
import base64
import re
from html.parser import HTMLParser

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from decathlon.cli import main
from decathlon.report import (Leaderboard, collect, dump_dom, find_chromium, leaderboards, render_page,
                              reproduction_frame)

HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
HOSTILE = '<img src=x onerror=alert(1)> & "q"'
SELECTION = "selected by sweep s1: best val of 4 trials"


class Page(HTMLParser):
    """A page's headings and tables: per table id its column keys, the headers' aria-sort and
    its body rows as (text, data-sort) cells."""

    def __init__(self, html: str):
        super().__init__()
        self.headings, self.tables, self.images = [], {}, []
        self._table = self._cell = self._heading = None
        self._in_body = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table = self.tables.setdefault(attrs.get("id"), {"keys": [], "aria": {}, "rows": []})
        elif tag == "th" and self._table is not None:
            self._table["keys"].append(attrs.get("data-key"))
            if attrs.get("aria-sort"):
                self._table["aria"][attrs["data-key"]] = attrs["aria-sort"]
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self._table["rows"].append([])
        elif tag == "td":
            self._cell = [attrs.get("data-sort"), ""]
        elif tag in HEADINGS:
            self._heading = ""
        elif tag == "img":
            self.images.append(attrs.get("src"))

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1] += data
        if self._heading is not None:
            self._heading += data

    def handle_endtag(self, tag):
        if tag == "td":
            self._table["rows"][-1].append((self._cell[1].strip(), self._cell[0]))
            self._cell = None
        elif tag == "tbody":
            self._in_body = False
        elif tag == "table":
            self._table = None
        elif tag in HEADINGS:
            self.headings.append(" ".join(self._heading.split()))
            self._heading = None

    def column(self, table_id: str, key: str) -> list:
        table = self.tables[table_id]
        index = table["keys"].index(key)
        return [row[index][0] for row in table["rows"]]


def tiny_board(synthetic=True) -> Leaderboard:
    """Three methods whose S and DTD sort differently as text and as numbers; costs given as
    metric rows (alpha's FLOPs) and as a column on the `mean` row (beta's device-hours)."""
    cells = [("alpha", "dtd", 9.5, 1.0, 2), ("beta", "dtd", 10.0, 0.5, 2), ("gamma", "dtd", 100.0, 0.0, 2),
             ("alpha", "S", 950.0, np.nan, 1), ("beta", "S", 1000.0, np.nan, 1), ("gamma", "S", 87.5, np.nan, 1),
             ("alpha", "gflops_per_image", 1.5, 0.01, 2), (HOSTILE, "dtd", 50.0, np.nan, 1)]
    cells += [(method, "mean", 1.0, np.nan, 2) for method in ("alpha", "beta", "gamma", HOSTILE)]
    frame = pd.DataFrame(cells, columns=["method", "metric", "mean", "se", "n"]).assign(source="ours")
    frame["device_hours"] = np.where((frame["method"] == "beta") & (frame["metric"] == "mean"), 0.25, np.nan)
    frame["note"] = np.where(frame["method"] == "beta", SELECTION, None)
    frame = frame.astype({"n": "Int64"})
    return Leaderboard(synthetic, "cpu_demo", "train", "val", "pretrained by this run", frame,
                       "S baseline: made up for the test.", (), (f"a note with {HOSTILE}",))


def test_cost_cells_and_notes_from_the_table_data(tmp_path, write_run):
    board = tiny_board()
    page = Page(render_page(collect(write_run(tmp_path)), [board], []))
    table = f"t-{board.slug}"
    assert page.column(table, "method") == ["alpha", "beta", "gamma", HOSTILE]
    assert page.column(table, "gflops_per_image") == ["1.500", "", "", ""]   # the mean, as leaderboard.md
    assert page.column(table, "device_hours") == ["", "0.2500", "", ""]
    assert page.column(table, "train_images_per_s") == page.column(table, "peak_memory_mib") == [""] * 4
    assert page.column(table, "note") == ["", SELECTION, "", ""]
    assert page.column(table, "S") == ["950", "1000", "88", "n/a"]   # ours without S, as in leaderboard.md


def test_numbers_carry_their_mean_to_sort_by(tmp_path, write_run):
    board = tiny_board()
    rows = Page(render_page(collect(write_run(tmp_path)), [board], [])).tables[f"t-{board.slug}"]["rows"]
    dtd = [row[6] for row in rows]   # method, seeds, ImNet, Airc, C100, DPed, DTD
    assert dtd[:3] == [("9.50 ± 1.00", "9.5"), ("10.00 ± 0.50", "10.0"), ("100.00 ± 0.00", "100.0")]
    assert [row[0][1] for row in rows] == [None] * 4   # text columns sort by their text


def test_everything_is_escaped(tmp_path, write_run):
    html = render_page(collect(write_run(tmp_path)), [tiny_board()], [])
    assert "<img src=x" not in html and "onerror=alert(1)>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; &#34;q&#34;" in html
    page = Page(html)
    assert HOSTILE in page.column(f"t-{tiny_board().slug}", "method") and page.images == []


def test_collect_writes_a_page_that_stands_alone_and_says_synthetic_in_every_heading(tmp_path, write_run):
    out = tmp_path / "out"
    assert main(["collect", str(write_run(tmp_path)), "--out", str(out)]) == 0
    html = (out / "index.html").read_text()
    page = Page(html)
    assert {"t-synthetic-cpu_demo-train-val", "r-synthetic-cpu_demo-train-test"} <= set(page.tables)
    assert len(page.headings) >= 8 and all("SYNTHETIC" in heading for heading in page.headings)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html, re.I)
    assert "<link" not in html and "@import" not in html and "url(" not in html
    plots = sorted(path.read_bytes() for path in (out / "plots").iterdir())
    assert len(plots) == 9 and plots == sorted(base64.b64decode(src.removeprefix("data:image/png;base64,"))
                                               for src in page.images)


def test_real_data_headings_do_not_say_synthetic(tmp_path, write_run):
    real = collect(write_run(tmp_path, synthetic=False))
    headings = Page(render_page(real, leaderboards(real), [])).headings
    assert headings[0] == "Visual Decathlon leaderboard (real data)"
    assert len(headings) >= 6 and not [heading for heading in headings if "SYNTHETIC" in heading]


def test_reported_vs_reproduced_per_domain(tmp_path, write_run):
    collection = collect(write_run(tmp_path, synthetic=False))
    test = next(board for board in leaderboards(collection) if board.split == "test")
    frame = reproduction_frame(test).set_index(["method", "metric"])
    assert sorted(frame.index) == sorted((variant, domain) for variant in ("finetune", "spottune (eval argmax)")
                                         for domain in ("imagenet12", "dtd", "svhn"))  # mean and S: not all ten
    row = frame.loc[("spottune (eval argmax)", "svhn")]
    assert row["published_method"] == "SpotTune (2019)"
    assert (row["published"], row["reproduced"]) == (pytest.approx(96.72), pytest.approx(80.0))
    assert row["difference"] == pytest.approx(80.0 - 96.72)
    page = Page(render_page(collection, [test], []))
    reproduction = page.tables[f"r-{test.slug}"]
    assert ["spottune (eval argmax)", "SpotTune (2019)", "SVHN", "96.72", "80.00 ± 5.00", "-16.72"] in \
        [[text for text, _ in row] for row in reproduction["rows"]]
    html = render_page(collection, [test], [])
    assert "Real test data: the difference is ours minus published" in html
    synthetic = collect(write_run(tmp_path / "synthetic"))
    assert "this comparison is NOT meaningful" in render_page(synthetic, leaderboards(synthetic), [])


def test_screenshot_without_chromium_is_one_line_before_anything_is_read(tmp_path, write_run, monkeypatch,
                                                                          capsys):
    monkeypatch.setattr("decathlon.report.browser.find_chromium", lambda: None)
    out = tmp_path / "out"
    assert main(["collect", str(write_run(tmp_path)), "--out", str(out), "--screenshot"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("decathlon collect: error: --screenshot needs Chromium") and "\n" not in error
    assert not out.exists() or not any(out.iterdir())


needs_chromium = pytest.mark.skipif(find_chromium() is None, reason="no Chromium (/usr/bin/chromium or chromium "
                                    "on PATH): the page's browser tests need it (apt-get install chromium)")


@needs_chromium
@pytest.mark.parametrize("fragment, methods", [
    ("S:desc", ["beta", "alpha", "gamma", HOSTILE]),               # as text: alpha (950), gamma (88), beta (1000)
    ("dtd:asc", ["alpha", "beta", HOSTILE, "gamma"]),             # 9.5 < 10 < 50 < 100, not "10.00" < "100.00"
    ("gflops_per_image:desc", ["alpha", "beta", "gamma", HOSTILE]),  # empty cells last, in table order
    ("method:desc", ["gamma", "beta", "alpha", HOSTILE])])     # by code point: "<" before letters
def test_the_browser_sorts_from_the_address(tmp_path, write_run, fragment, methods):
    board = tiny_board()
    index = tmp_path / "index.html"
    index.write_text(render_page(collect(write_run(tmp_path)), [board], []))
    table = f"t-{board.slug}"
    page = Page(dump_dom(index, f"sort={table}:{fragment}"))
    assert page.column(table, "method") == methods
    key, direction = fragment.split(":")
    assert page.tables[table]["aria"] == {key: {"asc": "ascending", "desc": "descending"}[direction]}
    cells = dict(zip(page.column(table, "method"), page.column(table, "dtd")))   # rows move whole
    assert cells == {"alpha": "9.50 ± 1.00", "beta": "10.00 ± 0.50", "gamma": "100.00 ± 0.00", HOSTILE: "50.00"}


@needs_chromium
def test_collect_screenshot_and_the_rendered_run(tmp_path, write_run):
    out = tmp_path / "out"
    assert main(["collect", str(write_run(tmp_path)), "--out", str(out), "--screenshot"]) == 0
    image = matplotlib.image.imread(out / "index.png")
    assert image.shape[:2] == (2000, 1400) and image.std() > 0
    table = "t-synthetic-cpu_demo-train-test"
    page = Page(dump_dom(out / "index.html", f"sort={table}:S:desc"))
    assert page.column(table, "method") == ["spottune (eval argmax)", "finetune"]
    assert page.column(table, "svhn") == ["80.00 ± 5.00", "70.00 ± 0.00"]
    assert page.headings and all("SYNTHETIC" in heading for heading in page.headings)


def test_each_track_has_its_own_section_and_sortable_table(tmp_path, write_tracks_run):
    from decathlon.report import OPEN_WHY

    collection = collect(write_tracks_run(tmp_path))
    html = render_page(collection, leaderboards(collection), [])
    page = Page(html)
    closed, opened = "t-synthetic-cpu_demo-train-val", "t-synthetic-cpu_demo-train-open-val"
    assert html.index('id="track-closed"') < html.index(f'id="{closed}"') < html.index('id="track-open"') \
        < html.index(f'id="{opened}"') < html.index("incomplete jobs (not counted)")
    assert "Closed track (SYNTHETIC data)" in page.headings and "Open track (SYNTHETIC data)" in page.headings
    assert OPEN_WHY.replace("'", "&#39;") in html
    assert page.column(closed, "method") == ["finetune", "finetune · resnet18 112 px", "spottune (eval argmax)"]
    assert page.column(closed, "arch") == ["resnet26", "timm:resnet18", "resnet26"]
    assert page.column(closed, "input_size") == ["native", "112 px", "native"]
    assert set(page.column(opened, "arch")) == {"timm:vit_tiny_patch16_224"}
    assert sorted(page.column(opened, "pretraining")) == ["external file vit_t.safetensors (sha256 1a2b3c4d5e6f)",
                                                          *["timm hub weights vit_tiny_patch16_224.augreg_in21k"] * 2]
    assert all("SYNTHETIC" in heading for heading in page.headings)
    real = collect(write_tracks_run(tmp_path / "real", synthetic=False))
    boards = {board.track: board for board in leaderboards(real) if board.split == "test"}
    assert set(reproduction_frame(boards["closed"])["method"]) == {"finetune", "spottune (eval argmax)"}
    assert reproduction_frame(boards["open"]).empty   # 'spottune (eval argmax) · vit...' is not SpotTune (2019)
    assert "Open track: the published rows are closed track" in render_page(real, [boards["open"]], [])
