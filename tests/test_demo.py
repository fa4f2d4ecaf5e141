"""`featperm demo`: three stages, each writing its results.json, and one report (report.md and a
self-contained report.html) rendered only from those files. The tests run the demo's tiny
configuration (--quick) for real: twice with one seed, to check that the results repeat."""

import base64
import contextlib
import io
import json
import pathlib
import re
import shutil

import pytest
import torch

from featperm import demo
from featperm.report import demo as demo_report

# Fields that measure time, not results: everything else must repeat for one seed.
TIMING_KEYS = {"seconds", "stage_seconds", "train_seconds", "date", "finished_utc", "vectors_per_second"}


def _without_timing(value):
    if isinstance(value, dict):
        return {k: _without_timing(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [_without_timing(v) for v in value]
    return value


@contextlib.contextmanager
def _one_thread():
    # One thread: on a CPU shared with other work, two spinning OpenMP threads run the tiny
    # networks several times slower than one.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run_demo(*args):
    out = io.StringIO()
    with _one_thread(), contextlib.redirect_stdout(out):
        status = demo.main(list(args))
    return status, out.getvalue()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo") / "out"
    status, stdout = _run_demo("--quick", "--no-progress", "--seed", "3", "--out", str(folder))
    assert status == 0
    return folder, stdout


def _tables(markdown):
    """Each Markdown table as (header cells, body rows of cells)."""
    tables, block = [], []
    for line in markdown.splitlines() + [""]:
        if line.startswith("|"):
            block.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
        elif block:
            tables.append((block[0], block[2:]))
            block = []
    return tables


def test_every_stage_writes_results_and_the_summary_names_the_report(tiny_run):
    folder, stdout = tiny_run
    for stage in demo_report.STAGES:
        assert (folder / stage / "results.json").is_file(), stage
    assert (folder / "report.md").is_file() and (folder / "report.html").is_file()
    for figure in ("feature_attacks/reconstructions.png", "feature_attacks/key_recovery.png",
                   "model_protection/accuracy_vs_budget.png", "throughput/throughput.png"):
        assert (folder / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", figure
    lines = stdout.strip().splitlines()
    assert lines[-1].startswith("report") and str(folder / "report.html") in lines[-1]
    summary = [line for line in lines if not line.startswith("[")]
    assert 6 <= len(summary) <= 15, summary
    attr = json.loads((folder / "feature_attacks" / "results.json").read_text())["attribute_inference"]
    assert f"chance {100 * attr['chance']:.1f}%" in stdout


def test_throughput_stage_times_every_op_against_clone_and_checks_round_trips(tiny_run):
    folder, _ = tiny_run
    results = json.loads((folder / "throughput" / "results.json").read_text())
    assert set(results["ops"]) == {"clone", *demo_report.THROUGHPUT_OPS}
    assert results["ops"]["clone"]["vs_clone"] == 1.0
    for op, entry in results["ops"].items():
        assert entry["median_ms"] > 0 and entry["min_ms"] <= entry["median_ms"] and entry["gb_per_s"] > 0, op
    assert results["rounds"] >= 5
    assert results["checks"] and all(results["checks"].values()), results["checks"]


def test_every_table_stands_next_to_its_chance_level_and_baseline(tiny_run):
    folder, _ = tiny_run
    text = (folder / "report.md").read_text()
    tables = _tables(text)
    assert len(tables) >= 6
    for header, rows in tables:
        assert rows, header
        assert any(h.startswith("baseline") for h in header), header
        if header[0] != "op":  # the throughput table: its baseline is clone(), there is no chance
            chance = [i for i, h in enumerate(header) if h.startswith("chance")]
            assert chance, header
            assert all(row[chance[0]] not in ("", "–") for row in rows), (header, rows)
    # the chance column holds the experiment's chance level
    attr = json.loads((folder / "feature_attacks" / "results.json").read_text())["attribute_inference"]
    header, rows = next(t for t in tables if t[0][0].startswith("intercepted") and "chance" in t[0])
    assert {row[header.index("chance")] for row in rows} == {f"{100 * attr['chance']:.1f}%"}
    protection = json.loads((folder / "model_protection" / "results.json").read_text())["accuracy"]
    header, rows = next(t for t in tables if t[0][0] == "model")
    assert {row[header.index("chance")] for row in rows} == {f"{protection['chance']:.1f}%"}


def test_html_is_self_contained_with_the_figures_embedded(tiny_run):
    folder, _ = tiny_run
    page = (folder / "report.html").read_text()
    images = re.findall(r'<img [^>]*src="([^"]*)"', page)
    assert len(images) == len(re.findall(r"^!\[", (folder / "report.md").read_text(), flags=re.M)) >= 5
    for src in images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert 'src="http' not in page and "<link" not in page and "<script" not in page
    assert "<style>" in page and page.count("<table>") == len(_tables((folder / "report.md").read_text()))


def test_report_only_renders_again_from_the_files_without_running(tiny_run, tmp_path, monkeypatch):
    source, _ = tiny_run
    for stage in demo_report.STAGES:
        shutil.copytree(source / stage, tmp_path / stage,
                        ignore=shutil.ignore_patterns("*.png", "results.md", "checkpoints", "key.fpk"))
    # a number changed in a results file shows up in the report: it is read from there
    throughput = json.loads((tmp_path / "throughput" / "results.json").read_text())
    throughput["ops"]["seal"]["vs_clone"] = 12.345
    (tmp_path / "throughput" / "results.json").write_text(json.dumps(throughput))
    monkeypatch.setattr(demo, "_stages", lambda args: pytest.fail("--report-only ran a stage"))
    status, stdout = _run_demo("--report-only", "--out", str(tmp_path))
    assert status == 0 and str(tmp_path / "report.html") in stdout
    assert "| `seal` |" in (tmp_path / "report.md").read_text() and "12.35×" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "throughput" / "throughput.png").is_file()
    assert (tmp_path / "feature_attacks" / "reconstructions.png").is_file()
    assert (tmp_path / "report.html").read_text().count("data:image/png;base64,") >= 5


def test_report_only_needs_results(tmp_path):
    with pytest.raises(FileNotFoundError, match="no results in"):
        demo_report.render_demo_report(tmp_path)


def test_same_seed_same_results(tiny_run, tmp_path):
    first, _ = tiny_run
    status, _ = _run_demo("--quick", "--no-progress", "--seed", "3", "--out", str(tmp_path))
    assert status == 0
    for stage in ("feature_attacks", "model_protection"):
        a = json.loads((first / stage / "results.json").read_text())
        b = json.loads((tmp_path / stage / "results.json").read_text())
        assert a["run"]["seed"] == 3
        assert _without_timing(a) == _without_timing(b), stage
    a = json.loads((first / "throughput" / "results.json").read_text())
    b = json.loads((tmp_path / "throughput" / "results.json").read_text())
    assert (a["tensor"], a["checks"]) == (b["tensor"], b["checks"])


def test_markdown_to_html_covers_the_subset_and_embeds_only_local_images(tmp_path):
    (tmp_path / "f.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    text = "\n".join([
        "# Title <script>", "", "Some **bold** and `a|b` and [a link](x/results.md).", "",
        "| name | value |", "|---|---:|", "| a \\| b | 1.0% |", "",
        "- one", "- two", "", "![a figure](f.png)", "", "![remote](http://example.com/x.png)", "",
        "```", "x < y", "```",
    ])
    page = demo_report.markdown_to_html(text, tmp_path)
    assert "<h1>Title &lt;script&gt;</h1>" in page and "<script>" not in page
    assert "<strong>bold</strong>" in page and "<code>a|b</code>" in page and '<a href="x/results.md">' in page
    assert '<th class="r">value</th>' in page and '<td class="l">a | b</td>' in page
    assert page.count("<li>") == 2
    embedded = base64.b64encode((tmp_path / "f.png").read_bytes()).decode()
    assert f'<img alt="a figure" src="data:image/png;base64,{embedded}">' in page
    assert 'src="http' not in page and "figure not available: remote" in page
    assert "<pre><code>x &lt; y</code></pre>" in page
