"""The GPU benchmarks' code paths, in their CPU smoke modes (the figures themselves need a GPU)."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(script, *args, timeout=300):
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_bench_gpu_smoke_writes_its_report(tmp_path):
    _run("bench_gpu.py", "--allow-cpu", "--quick", "--out-dir", str(tmp_path))
    report = json.loads((tmp_path / "gpu_cpu-smoke.json").read_text())
    assert {"finetune (eager)_b8", "spottune (eager)_b8", "ratio (eager)_b8"} <= set(report["training"])
    assert report["inference"]["b8"]["routed_over_dense"] > 0
    assert "spottune / finetune step time, eager, batch 8" in (tmp_path / "gpu_cpu-smoke.md").read_text()


def test_bench_protocol_smoke_projects_every_paper_protocol(tmp_path):
    _run("bench_protocol.py", "--allow-cpu", "--smoke", "--jobs-per-device", "2", "--out-dir", str(tmp_path),
         "--data-root", str(tmp_path / "data"), timeout=600)
    report = json.loads((tmp_path / "protocol_cpu-smoke.json").read_text())
    assert all(row["jobs"] == 2 and row["over_one_job"] > 0 for row in report["concurrent"].values())
    assert all(report["ceiling"][m]["images_per_s"] > 0 and row["ceiling_over_one_job"] > 0
               for m, row in report["concurrent"].items())
    assert "ceiling over one job" in (tmp_path / "protocol_cpu-smoke.md").read_text()
    assert set(report["cudnn_heuristics"]) == {"finetune", "spottune"}
    assert report["streamed_source"]["images_per_s"] > 0 and report["streamed_source"]["epochs_timed"] == 2
    assert {row["preset"] for row in report["projections"]} == {"spottune_paper", "adapters_paper"}
    assert all(row["total_h"] > row["pretrain_h"] > 0 for row in report["projections"])
    assert set(report["single"]) == {f"{m}/{d}" for m in ("finetune", "parallel_adapters", "spottune")
                                     for d in ("cifar100", "svhn", "daimlerpedcls")}


def test_bench_backbones_times_every_method_of_each_backbone_against_its_finetune(tmp_path):
    out = tmp_path / "backbones.json"
    _run("bench_backbones.py", "--archs", "timm:vit_tiny_patch16_224,timm:resnet18", "--input-size", "32",
         "--batch", "2", "--warmup", "0", "--rounds", "1", "--out", str(out))
    report = json.loads(out.read_text())
    vit, cnn = report["backbones"]
    assert {"finetune", "lora", "vpt", "adaptformer", "bitfit", "spottune"} <= set(vit["methods"])
    assert "vpt" not in cnn["methods"] and {"finetune", "lora", "spottune"} <= set(cnn["methods"])
    assert vit["methods"]["finetune"]["over_finetune"] == 1.0
    assert all(row["train_images_per_s"] > 0 and row["trained_parameters"] > 0
               for result in (vit, cnn) for row in result["methods"].values())
    assert vit["methods"]["lora"]["trained_parameters"] < vit["methods"]["finetune"]["trained_parameters"]
    assert "## timm:resnet18 (input 32)" in out.with_suffix(".md").read_text()
