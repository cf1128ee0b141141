"""What bounds the engine's rates on a device, for bench_protocol.py: the most the device
gives a training step (its ceiling), and how fast the source domain streams from its shards."""
from __future__ import annotations

import time
from types import SimpleNamespace


from _common import synchronize
from bench_gpu import build_method, configure
from decathlon.data import SOURCE_DOMAIN, ShardLoader
from decathlon.engine.step import WARMUP_STEPS, EagerStep, GraphedStep
from _gpu_timing import measure, synthetic_batch

CEILING_BATCH, CEILING_SIZE = 1024, 64   # on a CPU (smoke): 16 images of 32 px
STREAMED_EPOCHS = 2                      # timed, after one untimed epoch


def device_ceiling(s, method: str) -> dict:
    """img/s of `method`'s training step on one large batch already on the device, replayed
    from a CUDA graph (eager on a CPU): the most this device gives that step."""
    cuda = s.device.type == "cuda"
    # warm-up: the runner's eager steps and its capture happen before the timed calls
    timing = SimpleNamespace(device=s.device, width=s.width, warmup=WARMUP_STEPS + 2 if cuda else 1,
                             min_steps=5 if cuda else 2,
                             seconds=4.0 if cuda else 0.5, max_steps=200)
    configure(s.device)
    runner = (GraphedStep if cuda else EagerStep)(build_method(method, timing, s.precision))
    batch, size = (CEILING_BATCH, CEILING_SIZE) if cuda else (16, 32)
    normalised, labels = synthetic_batch(batch, size, s.device)
    result = measure(lambda: runner(normalised(), labels), timing, batch)
    synchronize(s.device)
    return {**result, "batch": batch, "size": size, "step": runner.kind}


def streamed_rate(s, data, hp: dict) -> dict:
    """img/s of the source domain's train split streamed from its shards (the reader thread,
    `prefetch` batches ahead) with the pretraining augmentation, delivered on the device,
    with nothing training: whether streaming can feed pretraining where the split does not
    fit in GPU memory (a fifth of it; full imagenet12 is about 25 GB). The shards were
    just written, so they are read from the page cache, as a second epoch would be."""
    loader = ShardLoader(data, SOURCE_DOMAIN, "train", hp["batch_size"], train=True, protocol=hp["augmentation"],
                         shuffle=True, seed=0, drop_last=True, device=s.device,
                         channels_last=s.device.type == "cuda", resident=False)
    images, seconds = 0, 0.0
    for epoch in range(1 + STREAMED_EPOCHS):
        loader.set_epoch(epoch)
        started = time.perf_counter()
        batches = sum(1 for _ in loader)
        synchronize(s.device)
        if epoch:
            images, seconds = images + batches * hp["batch_size"], seconds + time.perf_counter() - started
    return {"images_per_s": images / seconds, "batch": hp["batch_size"], "epochs_timed": STREAMED_EPOCHS,
            "images_per_epoch": len(loader) * hp["batch_size"]}
