"""A job's cost: FLOPs against an analytic count, SpotTune routed under its policy, the
cost fields of a finished job, and its record lines read back from TensorBoard events."""
import json

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.flop_counter import FlopCounterMode

from decathlon.benchmark import hparams
from decathlon.data import ShardLoader
from decathlon.engine import JobSpec, flops_per_image, run_job
from decathlon.engine.cost import time_cost
from decathlon.methods import get_method
from decathlon.models import resnet26
from decathlon.models import routing

WIDTH, SIZE, CLASSES = 0.125, 32, 47


def analytic_flops(blocks_per_stage, width, size, outputs):
    """2 x multiply-adds of a Decathlon ResNet on an image of `size` (side, or (height,
    width)): the stem and every block's two 3x3 convolutions (2 Cin Cout 9 H W at their
    output size), the linear layer (2 in out); the zero-padding shortcuts, BN, pooling and
    ReLU do no multiply-adds."""
    channels, (h, w) = round(32 * width), (size, size) if isinstance(size, int) else size
    total = 2 * 3 * channels * 9 * h * w
    for stage_width in (64, 128, 256):
        out = round(stage_width * width)
        for index in range(blocks_per_stage):
            if index == 0:
                h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1   # stride 2, padding 1
            total += 2 * channels * out * 9 * h * w + 2 * out * out * 9 * h * w
            channels = out
    return total + 2 * channels * outputs


def _batches(n=1, size=SIZE):
    generator = torch.Generator().manual_seed(0)
    return [(torch.randn(8, 3, size, size, generator=generator), torch.zeros(8, dtype=torch.long), None)
            for _ in range(n)]


def _method(name):
    hp = hparams(name, "dtd", "cpu_demo", {"width": WIDTH})
    return get_method(name)(CLASSES, hp, resnet26(12, WIDTH).state_dict())


def test_finetune_flops_are_those_of_resnet26_at_its_width_and_size():
    counted = flops_per_image(_method("finetune"), _batches(3), None, limit=20)
    # Without per-image decisions every image costs the same: the first few are counted.
    assert counted == {"flops_per_image": analytic_flops(4, WIDTH, SIZE, CLASSES), "images_counted": 8}
    spottune = flops_per_image(_method("spottune"), _batches(3), "argmax", limit=20)   # 8 + 8 + 4 of the third
    assert spottune["images_counted"] == 20


@pytest.mark.parametrize("name", ["bn_adapt", "series_adapters", "parallel_adapters", "random_policy",
                                  "spottune_global", "piggyback", "taps"])
def test_every_method_is_counted_and_keeps_what_it_trains(name):
    """A method whose module returns a parameter as is (SpotTune-Global's policy logits) is
    counted too, and every parameter it trains still requires grad afterwards."""
    method = _method(name)
    trained = {n for n, p in method.named_parameters() if p.requires_grad}
    policy = method.eval_policies()[0]
    assert flops_per_image(method, _batches(), policy)["flops_per_image"] > 0
    assert {n for n, p in method.named_parameters() if p.requires_grad} == trained


def _policy_choosing(method, tuned_blocks):
    """Make the policy's argmax pick the fine-tuned copy of exactly `tuned_blocks`."""
    head = method.net.spottune.domains["target"].policy.head.linear
    with torch.no_grad():
        head.weight.zero_()
        bias = torch.tensor([[0.0, 1.0] if b in tuned_blocks else [1.0, 0.0] for b in range(12)])
        head.bias.copy_(bias.flatten())


def test_spottune_flops_are_routed_backbone_plus_policy_whatever_the_usage(monkeypatch):
    method = _method("spottune")
    expected = analytic_flops(4, WIDTH, SIZE, CLASSES) + analytic_flops(1, WIDTH, SIZE, 2 * 12)
    _policy_choosing(method, set())
    assert flops_per_image(method, _batches(), "argmax")["flops_per_image"] == expected   # all frozen
    # A block's two copies cost the same, so under routed execution the usage changes nothing,
    # even where the evaluation itself would run dense (as on CUDA).
    monkeypatch.setitem(routing.ROUTED_MIN_BATCH, "cpu", None)
    for tuned in ({0, 5, 11}, set(range(12))):
        _policy_choosing(method, tuned)
        assert flops_per_image(method, _batches(), "argmax")["flops_per_image"] == expected
    assert "forward" not in vars(method.net.spottune)   # the routing is undone
    with FlopCounterMode(display=False) as dense, torch.no_grad():
        method.eval()
        method.net.spottune(_batches()[0][0], "target", "argmax", routed=False)
    assert dense.get_total_flops() / 8 > expected   # dense runs both copies of every block


def test_time_cost_sums_every_recorded_epoch():
    records = [{"seconds": 10.0, "train_images_per_s": 30.0, "eval_seconds": 2.0},
               {"seconds": 20.0, "train_images_per_s": 60.0, "eval_seconds": 4.0}]
    cost = time_cost(records, 6.0, 2, "cpu")
    assert cost["train_images_per_s"] == pytest.approx((300 + 1200) / 30)
    assert cost["device_hours"] == pytest.approx((30 + 12) * 2 / 3600)
    assert time_cost([], 6.0, 1, "cpu")["train_images_per_s"] is None   # evaluation only


def test_job_records_its_cost_and_tensorboard_curves(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path):
    hp = hparams("spottune", "dtd", "cpu_demo", dict(tiny_hparams, epochs=2))
    final = run_job(JobSpec("spottune", "dtd", str(tiny_decathlon), str(tmp_path), hp, backbone=str(tiny_backbone),
                            device="cpu", progress=False, tensorboard=True))
    written = json.loads((tmp_path / "final.json").read_text())
    assert written["spec"]["tensorboard"] is True
    cost = written["cost"]
    flops = cost["flops"]["dtd"]
    assert flops["split"] == "val" and flops["eval_policy"] == "argmax"
    assert 0 < flops["images_counted"] <= min(512, final["splits"]["val"]["num_images"])
    # Routed, whatever the policy chose: the backbone and the policy network, at the size of
    # the images evaluated (the loader's, as the job's evaluation reads them).
    loader = ShardLoader(tiny_decathlon, "dtd", "val", hp["eval_batch_size"], train=False, protocol=hp["augmentation"],
                         shuffle=False, seed=0, drop_last=False, device="cpu")
    sizes = [tuple(images.shape[2:]) for images, _, _ in loader for _ in images][:flops["images_counted"]]
    width = tiny_hparams["width"]
    assert flops["flops_per_image"] == pytest.approx(sum(
        analytic_flops(4, width, size, final["num_classes"]) + analytic_flops(1, width, size, 2 * 12)
        for size in sizes) / len(sizes), rel=1e-12)
    records = [json.loads(line) for line in (tmp_path / "record.jsonl").read_text().splitlines()]
    assert cost["train_seconds"] == pytest.approx(sum(r["seconds"] for r in records))
    assert cost["device_hours"] > cost["train_seconds"] / 3600 and cost["world_size"] == 1
    assert cost["train_images_per_s"] > 0 and cost["device_kind"] == "cpu"
    assert cost["peak_memory_mib"] > 0 and cost["peak_memory_kind"] == "process_max_rss"

    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train_loss", "lr", "val_accuracy", "val_stats/policy_usage/1", "val_stats/policy_usage/12"} <= tags
    for tag, field in (("train_loss", ["train_loss"]), ("lr", ["lr"]), ("val_accuracy", ["val_accuracy"]),
                       ("val_stats/policy_usage/7", ["val_stats", "policy_usage", 6])):
        wanted = []
        for record in records:
            value = record
            for key in field:
                value = value[key]
            wanted.append(value)
        scalars = events.Scalars(tag)
        assert [s.step for s in scalars] == [1, 2]
        assert [s.value for s in scalars] == pytest.approx(wanted, rel=1e-6)   # stored as float32
