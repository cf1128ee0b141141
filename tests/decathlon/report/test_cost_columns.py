"""The cost columns: read from final.json's cost, aggregated over domains and seeds by hand,
in leaderboard.md, .tex and scores.csv, plotted against S; empty for records without cost."""
import json

import matplotlib.image
import pandas as pd
import pytest

from decathlon.report import collect, leaderboards, write_plots, write_tables

# (domain, seed) -> (GFLOPs per image, training images/s, device-hours, peak MiB) of spottune's jobs
COSTS = {("dtd", 0): (0.5, 100.0, 0.25, 900.0), ("svhn", 0): (0.3, 300.0, 0.5, 1000.0),
         ("dtd", 1): (0.5, 200.0, 0.75, 800.0), ("svhn", 1): (0.3, 400.0, 1.0, 700.0)}


def _add_costs(run):
    """Give every spottune job a cost; finetune's records stay as older ones are, without."""
    for (domain, seed), (gflops, rate, hours, memory) in COSTS.items():
        path = run / "jobs" / "cpu_demo-train" / "spottune" / domain / f"seed{seed}" / "final.json"
        final = json.loads(path.read_text())
        final["cost"] = {"flops": {domain: {"flops_per_image": gflops * 1e9, "images_counted": 5, "split": "val",
                                            "eval_policy": "argmax"}},
                         "train_images_per_s": rate, "train_seconds": 10.0, "eval_seconds": 1.0,
                         "device_hours": hours, "device_kind": "cpu", "world_size": 1,
                         "peak_memory_mib": memory, "peak_memory_kind": "process_max_rss"}
        path.write_text(json.dumps(final))
    return run


def test_cost_cells_are_the_domain_mean_the_summed_hours_and_the_largest_memory(tmp_path, write_run):
    board = next(b for b in leaderboards(collect(_add_costs(write_run(tmp_path)))) if b.split == "val")
    # per seed: mean over domains (FLOPs, img/s), sum (device-h), max (memory); then over seeds
    assert board.value("spottune (eval argmax)", "gflops_per_image") == pytest.approx(0.4)
    assert board.value("spottune (eval argmax)", "train_images_per_s") == pytest.approx((200 + 300) / 2)
    assert board.value("spottune (eval argmax)", "device_hours") == pytest.approx((0.75 + 1.75) / 2)
    assert board.value("spottune (eval argmax)", "device_hours", "se") == pytest.approx(0.5)
    assert board.value("spottune (eval argmax)", "peak_memory_mib") == pytest.approx((1000 + 800) / 2)
    for metric in ("gflops_per_image", "train_images_per_s", "device_hours", "peak_memory_mib"):
        assert pd.isna(board.value("finetune", metric))   # no cost recorded: no number
    assert any("device-h the sum over the jobs" in note and "process_max_rss" in note for note in board.notes)


def test_tables_show_the_cost_columns_and_empty_cells_without_cost(tmp_path, write_run):
    out = tmp_path / "out"
    write_tables(collect(_add_costs(write_run(tmp_path))), out)
    lines = (out / "leaderboard.md").read_text().splitlines()
    header = next(line for line in lines if line.startswith("| method"))
    columns = [cell.strip() for cell in header.strip("|").split("|")]
    assert columns[-9:] == ["S", "#par", "GFLOPs/img", "train img/s", "device-h", "peak MiB", "backbone", "input",
                            "pretraining"]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")] for line in lines
            if line.startswith("| spottune (eval argmax)") or line.startswith("| finetune")}
    assert rows["spottune (eval argmax)"][-7:-3] == ["0.400", "250", "1.2500", "900"]
    assert rows["finetune"][-7:-3] == ["", "", "", ""]
    assert "GFLOPs/img" in (out / "leaderboard.tex").read_text()
    scores = pd.read_csv(out / "scores.csv")
    mine = scores[(scores["method"] == "spottune (eval argmax)") & (scores["split"] == "val")].set_index("metric")
    assert mine.loc["device_hours", "mean"] == pytest.approx(1.25) and mine.loc["device_hours", "n"] == 2
    assert mine.loc["gflops_per_image", "mean"] == pytest.approx(0.4)
    assert not (scores["method"].eq("finetune") & scores["metric"].eq("device_hours")).any()


def test_s_against_flops_is_plotted_where_methods_have_both(tmp_path, write_run):
    written = {p.name: p for p in write_plots(collect(_add_costs(write_run(tmp_path))), tmp_path / "out")}
    plot = written["s_vs_flops_synthetic-cpu_demo-train-val.png"]
    assert matplotlib.image.imread(plot).ndim == 3
    older = write_plots(collect(write_run(tmp_path / "older")), tmp_path / "older-out")
    assert not [p for p in older if p.name.startswith("s_vs_flops")]   # no cost recorded: no plot
