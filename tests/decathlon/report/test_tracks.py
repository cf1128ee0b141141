"""Closed and open track never share a ranking: the records of `write_tracks_run` (closed
resnet26 rows of the older format, a closed timm:resnet18 pretrained by the suite, open ViT
rows from timm's hub and from an external file) through collection, tables and scores.csv."""
import json

import pandas as pd
import pytest

from decathlon.report import collect, leaderboards, write_tables
from decathlon.report import OPEN_WHY

HUB_LORA = ("lora · vit_tiny_patch16_224 (depth=2, embed_dim=48, num_heads=2) native patch 8 · "
            "timm hub weights vit_tiny_patch16_224.augreg_in21k")
FILE_LORA = HUB_LORA.replace("timm hub weights vit_tiny_patch16_224.augreg_in21k",
                             "external file vit_t.safetensors (sha256 1a2b3c4d5e6f)")
RESNET18 = "finetune · resnet18 112 px"


def boards_by_track(collection, split="val"):
    return {board.track: board for board in leaderboards(collection) if board.split == split}


def test_old_records_read_as_closed_resnet26_rows(tmp_path, write_run):
    jobs = collect(write_run(tmp_path)).jobs
    assert set(jobs["track"]) == {"closed"} and set(jobs["arch"]) == {"resnet26"}
    assert jobs["input_size"].isna().all() and (jobs["backbone_tag"] == "").all()
    kinds = jobs.groupby("method")["pretraining_kind"].agg(set).to_dict()
    assert kinds == {"finetune": {"suite"}, "spottune": {"suite"}, "pretrain": {"none"}}
    assert set(jobs.loc[jobs["method"] == "finetune", "pretraining"]) == {"imagenet12, pretrained by this run"}


def test_tracks_are_separate_tables_and_backbones_separate_rows(tmp_path, write_tracks_run):
    boards = boards_by_track(collect(write_tracks_run(tmp_path)))
    closed, opened = boards["closed"], boards["open"]
    assert closed.methods() == ["finetune", RESNET18, "spottune (eval argmax)"]
    assert opened.methods() == [FILE_LORA, HUB_LORA, f"spottune (eval argmax) · {HUB_LORA.split(' · ', 1)[1]}"]
    assert {closed.row(m)["track"] for m in closed.methods()} == {"closed"}
    assert {opened.row(m)["track"] for m in opened.methods()} == {"open"}
    # the two LoRA backbones (hub, file) are two rows, never averaged
    assert (opened.value(HUB_LORA, "dtd"), opened.value(FILE_LORA, "dtd")) == (pytest.approx(70.0),
                                                                                pytest.approx(50.0))
    assert closed.row(RESNET18) == {"track": "closed", "arch": "timm:resnet18", "input_size": "112 px",
                                    "patch_size": None, "pretraining": "imagenet12, pretrained by this suite"}
    # ImNet: the resnet18's own pretraining job, not the resnet26's; the open track has none
    assert closed.value(RESNET18, "imagenet12") == pytest.approx(20.0)
    assert closed.value("finetune", "imagenet12") == pytest.approx(40.0)
    assert opened.cells["metric"].ne("imagenet12").all() and any("open track" in n for n in opened.notes)
    # #par in the row's own backbone: (1010 - 100) / 1000 per domain
    assert opened.value(HUB_LORA, "#par") == pytest.approx(1 + 2 * 0.91)
    # S on synthetic data: the closed track's resnet26 finetune is the baseline of both tables
    assert "the closed track's, on resnet26" in opened.baseline
    assert closed.slug == "synthetic-cpu_demo-train-val" and opened.slug == "synthetic-cpu_demo-train-open-val"
    assert "open track" in opened.title and "closed track" in closed.title


def test_s_of_an_open_row_against_the_closed_finetune_by_hand(tmp_path, write_tracks_run):
    opened = boards_by_track(collect(write_tracks_run(tmp_path)))["open"]
    # baseline errors: dtd 0.45, svhn 0.20 (resnet26 finetune, val); ImNet not scored (no ImNet of the row)
    points = 1000 * (1 - 0.30 / 0.90) ** 2 + 1000 * (1 - 0.10 / 0.40) ** 2
    assert opened.value(HUB_LORA, "S") == pytest.approx(points)


def test_real_test_published_rows_only_in_the_closed_track(tmp_path, write_tracks_run):
    boards = boards_by_track(collect(write_tracks_run(tmp_path, synthetic=False)), "test")
    assert "SpotTune (2019) (published)" in boards["closed"].methods("published")
    assert boards["closed"].row("SpotTune (2019) (published)")["arch"] == "resnet26"
    assert boards["open"].methods("published") == []
    assert "published Finetune test errors" in boards["open"].baseline


def test_markdown_and_scores_csv_keep_the_tracks_apart(tmp_path, write_tracks_run):
    markdown_path, latex_path, scores_path = write_tables(collect(write_tracks_run(tmp_path)), tmp_path / "out")
    markdown = markdown_path.read_text()
    closed_at, open_at = markdown.index("## Closed track (SYNTHETIC data)"), markdown.index("## Open track (SYNTHETIC")
    assert closed_at < open_at < markdown.index("## Incomplete jobs")
    assert OPEN_WHY in markdown and "#par: model size in units of the row's own backbone" in markdown
    assert "| lora" not in markdown[:open_at] and "| finetune · resnet18 112 px |" in markdown[:open_at]
    assert "| finetune · resnet18 112 px |" not in markdown[open_at:]
    assert "| backbone | input | pretraining |" in markdown
    assert "% Open track (SYNTHETIC data). Open track:" in latex_path.read_text()
    scores = pd.read_csv(scores_path, keep_default_na=False)
    assert {"track", "arch", "input_size", "patch_size", "pretraining"} <= set(scores.columns)
    lora = scores[scores["method"] == HUB_LORA]
    assert set(lora["track"]) == {"open"} and set(lora["arch"]) == {"timm:vit_tiny_patch16_224"}
    assert set(lora["input_size"]) == {"native"} and set(lora["patch_size"].astype(str)) == {"8"}
    assert set(scores.loc[scores["track"] == "closed", "method"]) == {"finetune", RESNET18, "spottune (eval argmax)"}


def test_a_record_whose_track_contradicts_its_pretraining_is_not_counted(tmp_path, write_tracks_run):
    run = write_tracks_run(tmp_path)
    final_path = next(run.glob("jobs/*/lora-h1/dtd/seed0/final.json"))
    final = json.loads(final_path.read_text())
    final["track"] = "closed"   # a timm-hub backbone claimed as closed track
    final_path.write_text(json.dumps(final))
    collection = collect(run)
    reason = collection.incomplete.set_index("path").loc[str(final_path.parent), "reason"]
    assert reason == ("final.json field 'track' is 'closed', but pretraining kind 'timm-hub' is open track "
                      "(external data)")
    assert "closed" not in set(collection.jobs.loc[collection.jobs["pretraining_kind"] == "timm-hub", "track"])
    final.update(track="open", pretraining={"kind": "imagenet21k"})
    final_path.write_text(json.dumps(final))
    reason = collect(run).incomplete.set_index("path").loc[str(final_path.parent), "reason"]
    assert reason.startswith("final.json field 'pretraining' is {'kind': 'imagenet21k'}, expected an object whose "
                             "'kind' is one of suite, imported, none, external, timm-hub")


def test_submissions_take_imagenet12_from_the_rows_own_backbone_only(tmp_path, write_tracks_run):
    from decathlon.report import write_submissions
    from decathlon.scoring import validate_results

    summary = write_submissions(collect(write_tracks_run(tmp_path)), tmp_path / "out")
    assert (summary["problem"] == "").all()
    summary = summary[summary["seed"] == 0].set_index("method")
    coverage = {method: set(validate_results(tmp_path / "out" / summary.loc[method, "file"]).coverage.index)
                for method in (HUB_LORA, RESNET18, "finetune")}
    assert coverage[HUB_LORA] == {"dtd", "svhn"}   # pretrained outside the suite: no imagenet12 of its own
    assert coverage[RESNET18] == coverage["finetune"] == {"imagenet12", "dtd", "svhn"}
