"""A method that reports its layer gates (TAPS) gets a tuned-layers note under every table
and a domain x layer plot; other methods get neither."""
import json

import matplotlib.image
import pytest

from decathlon.report import collect, leaderboard_markdown, leaderboards, write_plots

# (domain, seed): gates of the 25 layers
GATES = {("dtd", 0): [1.0] * 3 + [0.0] * 22, ("dtd", 1): [1.0] * 5 + [0.0] * 20,
         ("svhn", 0): [0.0] * 24 + [1.0], ("svhn", 1): [0.0] * 24 + [1.0]}


def _add_taps_jobs(run):
    """TAPS jobs made from the fabricated finetune ones, with their gates in the stats."""
    for path in run.glob("jobs/*/finetune/*/seed*/final.json"):
        domain, seed = path.parent.parent.name, int(path.parent.name.removeprefix("seed"))
        folder = run / "jobs" / "cpu_demo-train" / "taps" / domain / f"seed{seed}"
        folder.mkdir(parents=True)
        final = json.loads(path.read_text())
        final["spec"]["method"] = "taps"
        for entry in final["splits"].values():
            entry["stats"] = {"layer_gates": GATES[(domain, seed)]}
        (folder / "final.json").write_text(json.dumps(final))
        for file in path.parent.glob("predictions_*.npz"):
            (folder / file.name).write_bytes(file.read_bytes())
        (folder / "done").write_text("")
    return run


@pytest.fixture
def taps_run(tmp_path, write_run):
    return _add_taps_jobs(write_run(tmp_path))


def test_tables_say_how_many_layers_each_domain_tuned(taps_run):
    collection = collect(taps_run)
    assert set(collection.layers["variant"]) == {"taps"}
    assert len(collection.layers) == 4 * 25
    note = "taps: layers tuned per domain (of 25; mean over seeds): DTD 4, SVHN 1"
    for board in leaderboards(collection):
        assert note in board.notes
        assert not any(n.startswith(("finetune:", "spottune")) for n in board.notes)
    assert f"Note: {note}." in leaderboard_markdown(collection, leaderboards(collection))


def test_taps_layer_plot_is_written_only_for_taps(taps_run, tmp_path):
    written = {p.name: p for p in write_plots(collect(taps_run), tmp_path / "out")}
    layers = [name for name in written if "_layers_" in name]
    assert layers == ["taps_layers_synthetic-cpu_demo-train_taps.png"]
    image = matplotlib.image.imread(written[layers[0]])
    assert image.ndim == 3 and min(image.shape[:2]) > 100
