"""bench/_compiled_tail.py: job lengths from the presets and the registry, and the break-even."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import _compiled_tail  # noqa: E402  (a bench helper, not a package)


def test_job_steps_follow_the_preset_and_the_registry():
    # spottune_paper: train+val of cifar100 (40,000 + 10,000), batch 128, last batch kept, 110 epochs.
    assert _compiled_tail.job_steps("cifar100", "spottune_paper") == 391 * 110
    # cpu_demo: train only, batch 64, last batch dropped, 3 epochs.
    assert _compiled_tail.job_steps("cifar100", "cpu_demo", train_images=200) == 3 * 3


def timings(eager_ms, compiled_ms):
    return {"spottune": {"median_ms": eager_ms}, "spottune_compiled_tail": {"median_ms": compiled_ms}}


def test_break_even_is_compile_time_over_the_saving_per_step():
    result = _compiled_tail.with_break_even(timings(100.0, 90.0), {"cold_s": 20.0, "warm_s": 1.05}, "cifar100")
    assert result["compiled_tail_ratio"] == pytest.approx(0.9)
    assert result["compiled_tail"]["break_even_steps"] == {"cold": 2000, "warm": 105}
    assert result["compiled_tail"]["spottune_paper_job_steps"] == {"vgg-flowers": 16 * 110, "svhn": 573 * 110}
    slower = _compiled_tail.with_break_even(timings(100.0, 101.0), {"cold_s": 20.0, "warm_s": 1.0}, "cifar100")
    assert slower["compiled_tail"]["break_even_steps"] == {"cold": None, "warm": None}
    assert "never" in _compiled_tail.summary_line(slower)
