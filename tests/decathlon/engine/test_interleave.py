"""The joint epoch: every domain's batches once, in an order that is a function of (seed, epoch)."""
from collections import Counter

import pytest

from decathlon.engine.interleave import epoch_schedule

COUNTS = {"svhn": 12, "vgg-flowers": 2, "dtd": 5}


@pytest.mark.parametrize("per_step", [1, 2, 3])
def test_every_batch_once_and_steps_of_distinct_domains(per_step):
    steps = epoch_schedule(COUNTS, seed=0, epoch=0, domains_per_step=per_step)
    assert Counter(d for step in steps for d in step) == COUNTS
    assert all(len(step) == len(set(step)) <= per_step for step in steps)
    if per_step == 1:
        assert len(steps) == sum(COUNTS.values())


def test_order_is_a_function_of_seed_and_epoch():
    assert epoch_schedule(COUNTS, 0, 1, 1) == epoch_schedule(dict(reversed(COUNTS.items())), 0, 1, 1)
    assert epoch_schedule(COUNTS, 0, 1, 1) != epoch_schedule(COUNTS, 0, 2, 1)
    assert epoch_schedule(COUNTS, 0, 1, 1) != epoch_schedule(COUNTS, 1, 1, 1)
    assert epoch_schedule({"dtd": 4}, 5, 3, 2) == [("dtd",)] * 4   # one domain: its own order
    with pytest.raises(ValueError, match="domains_per_step must be at least 1"):
        epoch_schedule(COUNTS, 0, 0, 0)


def test_a_small_domain_is_spread_over_the_epoch():
    positions = [i for i, step in enumerate(epoch_schedule({"big": 400, "small": 4}, 0, 0, 1)) if step == ("small",)]
    assert max(b - a for a, b in zip([0, *positions], [*positions, 404])) < 300


def test_grouped_joint_steps_train(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path):
    from decathlon.benchmark import joint_hparams
    from decathlon.engine import JobSpec, run_job

    hp = joint_hparams("spottune_joint", ["dtd", "svhn"], "cpu_demo",
                       dict(tiny_hparams, epochs=1, joint_domains_per_step=2))
    final = run_job(JobSpec("spottune_joint", "dtd+svhn", str(tiny_decathlon), str(tmp_path), hp,
                            backbone=str(tiny_backbone), device="cpu", progress=False, domains=("dtd", "svhn")))
    assert final["spec"]["hparams"]["joint_domains_per_step"] == 2 and (tmp_path / "done").is_file()
