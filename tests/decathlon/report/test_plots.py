"""Every figure of a collected run is written, non-empty and a readable PNG."""
import matplotlib.image

from decathlon.report import collect, write_plots


def check_pngs(paths):
    for path in paths:
        assert path.stat().st_size > 0
        image = matplotlib.image.imread(path)
        assert image.ndim == 3 and min(image.shape[:2]) > 100


def test_synthetic_run_plots(tmp_path, write_run):
    written = write_plots(collect(write_run(tmp_path)), tmp_path / "out")
    names = {p.name for p in written}
    assert names == {
        "accuracy_synthetic-cpu_demo-train-val.png", "accuracy_synthetic-cpu_demo-train-test.png",
        "s_vs_par_synthetic-cpu_demo-train-val.png", "s_vs_par_synthetic-cpu_demo-train-test.png",
        "policy_synthetic-cpu_demo-train-val_spottune-eval-argmax.png",
        "policy_synthetic-cpu_demo-train-test_spottune-eval-argmax.png",
        "curves_synthetic-cpu_demo-train-finetune.png", "curves_synthetic-cpu_demo-train-pretrain.png",
        "curves_synthetic-cpu_demo-train-spottune-eval-argmax.png"}
    assert {p.parent for p in written} == {tmp_path / "out" / "plots"}
    assert sorted(p.name for p in (tmp_path / "out" / "plots").iterdir()) == sorted(names)  # no temp files
    check_pngs(written)


def test_real_run_plots_and_no_s_plot_without_a_baseline(tmp_path, write_run):
    real = write_plots(collect(write_run(tmp_path / "real", synthetic=False)), tmp_path / "real-out")
    assert "s_vs_par_cpu_demo-train-test.png" in {p.name for p in real}
    check_pngs(real)
    without = write_plots(collect(write_run(tmp_path / "nofinetune", finetune=False)), tmp_path / "out")
    assert not [p for p in without if p.name.startswith("s_vs_par")]
    check_pngs(without)


def test_each_track_has_its_own_s_plots_and_policy_plots_of_any_depth(tmp_path, write_tracks_run):
    written = write_plots(collect(write_tracks_run(tmp_path)), tmp_path / "out")
    names = {p.name for p in written}
    for table in ("synthetic-cpu_demo-train-val", "synthetic-cpu_demo-train-open-val"):
        assert {f"s_vs_par_{table}.png", f"accuracy_{table}.png"} <= names
    vit = ("policy_synthetic-cpu_demo-train-open-val_spottune-eval-argmax-vit_tiny_patch16_224-depth-2-embed_dim-48-"
           "num_heads-2-native-patch-8-timm-hub-weights-vit_tiny_patch16_224-augreg_in21k.png")
    assert vit in names and "policy_synthetic-cpu_demo-train-val_spottune-eval-argmax.png" in names
    assert not [name for name in names if name.endswith("_compare.png")]   # one SpotTune per track: nothing to compare
    check_pngs([p for p in written if p.name.startswith(("policy_", "s_vs_par_"))])
