"""Loader throughput: prepared HDF5 shards + ShardLoader against today's design and the
public codes' JPEG pipeline.

Every side delivers the same images as ready, normalised batches on --device:
- new: decathlon.data.loader.ShardLoader on format-2 shards (whole images, ragged batches),
  once streamed (chunk reads in a reader thread) and once resident (the split held whole);
- today: the format-1 read + crop path (bench/_loader_v1.py) over the central 72x72 squares
  cut from the same images, once streamed (chunk reads) and once from its in-memory cache;
- jpeg: a torchvision.datasets-style Dataset (one JPEG per __getitem__, PIL decode,
  torchvision Resize / crop / flip / ToTensor / Normalize) in a torch DataLoader with
  --workers worker processes, as the SpotTune and residual-adapter codes do.
new and today are timed ABBA-interleaved (new, today, today, new, --rounds times, after
one untimed epoch each), so that load from other processes hits both alike; the rate of
a side is all its images over all its time. The JPEG side reports the best of --repeats
epochs after a warm-up.

    python bench/bench_loader.py --jpeg-root data/decathlon-1.0 --shards data/prepared \\
        --domains aircraft,cifar100
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from decathlon.data.domains import ANNOTATION_FILES
from decathlon.data import ShardLoader, augmentation_spec, get_domain, parse_domains
from decathlon.data.transforms import NETWORK_SIDE
from _loader_v1 import SquareLoader, write_squares


class JpegFolder(Dataset):
    """The public codes' dataset: one JPEG file decoded and transformed per sample."""

    def __init__(self, files: list, labels: list, transform):
        self.files, self.labels, self.transform = files, labels, transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        with Image.open(self.files[index]) as image:
            return self.transform(image.convert("RGB")), self.labels[index]


def torchvision_pipeline(domain: str, protocol: str, train: bool) -> transforms.Compose:
    """The PIL/torchvision equivalent of decathlon.data.transforms for one domain and protocol."""
    spec = augmentation_spec(domain, protocol, train)
    steps = [transforms.Resize(NETWORK_SIDE)]  # the shorter side to 72, the whole image kept
    steps.append(transforms.RandomCrop(spec.crop_hw) if spec.random_crop else transforms.CenterCrop(spec.crop_hw))
    if spec.flip:
        steps.append(transforms.RandomHorizontalFlip())
    info = get_domain(domain)
    steps += [transforms.ToTensor(), transforms.Normalize(info.mean, info.std)]
    return transforms.Compose(steps)


def jpeg_files_for(jpeg_root: Path, domain: str, split: str, image_ids: list) -> tuple:
    """The JPEG of each image id, through the devkit's annotation file when it is there.

    Without it, the k-th JPEG of the split in name order stands for the k-th stored image,
    which is the preparer's order. Returns (files, how they were matched).
    """
    annotation = jpeg_root / "annotations" / ANNOTATION_FILES[split].format(domain=domain)
    if annotation.is_file():
        file_of = {image["id"]: image["file_name"] for image in json.loads(annotation.read_text())["images"]}
        return [jpeg_root / file_of[i] for i in image_ids], f"by image_id ({annotation.name})"
    files = sorted((jpeg_root / "data" / domain / split).glob("*.jpg"))[:len(image_ids)]
    if len(files) < len(image_ids):
        raise SystemExit(f"{jpeg_root / 'data' / domain / split}: {len(files)} JPEGs, need {len(image_ids)}")
    return files, "by file order (no annotation file)"


def best_epoch_rate(run_epoch, repeats: int) -> float:
    """Images per second of the fastest of `repeats` epochs, after one untimed warm-up."""
    run_epoch()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        count = run_epoch()
        rates.append(count / (time.perf_counter() - start))
    return max(rates)


def abba_rates(new, today, rounds: int) -> tuple:
    """(new, today) images per second over `rounds` ABBA rounds, after one untimed epoch each."""
    new(), today()
    images, seconds = {new: 0, today: 0}, {new: 0.0, today: 0.0}
    for _ in range(rounds):
        for side in (new, today, today, new):
            start = time.perf_counter()
            images[side] += side()
            seconds[side] += time.perf_counter() - start
    return images[new] / seconds[new], images[today] / seconds[today]


def drain(batches, device: torch.device) -> int:
    """Bring every batch to `device` and wait for it; the number of images."""
    count = 0
    for images, *_ in batches:
        count += len(images.to(device, non_blocking=True))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return count


def epoch_runner(loader, device: torch.device):
    epochs = itertools.count(1)

    def run() -> int:
        loader.set_epoch(next(epochs))
        return drain(loader, device)
    return run


def bench_domain(args, domain: str, device: torch.device, scratch: Path) -> dict:
    options = dict(train=True, protocol=args.protocol, shuffle=True, seed=0, drop_last=False, device=device,
                   max_images=args.max_images)
    streamed = ShardLoader(args.shards, domain, args.split, args.batch_size, resident=False, **options)
    resident = ShardLoader(args.shards, domain, args.split, args.batch_size, resident=True, **options)
    squares = scratch / f"{domain}.h5"
    write_squares(squares, streamed)
    spec = augmentation_spec(domain, args.protocol, train=True)
    row = {"domain": domain, "images": streamed.num_images}
    row["new_streamed"], row["today_streamed"] = abba_rates(
        epoch_runner(streamed, device), epoch_runner(SquareLoader(squares, streamed, spec, cached=False), device),
        args.rounds)
    row["new_resident"], row["today_cached"] = abba_rates(
        epoch_runner(resident, device), epoch_runner(SquareLoader(squares, resident, spec, cached=True), device),
        args.rounds)
    ids, labels = [], []
    for _, batch_labels, batch_ids in streamed:
        ids += batch_ids.tolist()
        labels += batch_labels.tolist()
    files, row["matched"] = jpeg_files_for(args.jpeg_root, domain, args.split, ids)
    dataset = JpegFolder(files, labels, torchvision_pipeline(domain, args.protocol, train=True))
    jpeg = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                      pin_memory=device.type == "cuda")
    row["jpeg"] = best_epoch_rate(lambda: drain(jpeg, device), args.repeats)
    return row


def overall(rows: list, key: str) -> float:
    """Images per second over all domains (total images / total time)."""
    return sum(r["images"] for r in rows) / sum(r["images"] / r[key] for r in rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jpeg-root", type=Path, required=True, help="the decathlon-1.0 folder (data/, annotations/)")
    parser.add_argument("--shards", type=Path, required=True, help="the prepared folder (manifest.json)")
    parser.add_argument("--domains", default="aircraft,cifar100")
    parser.add_argument("--split", default="train")
    parser.add_argument("--protocol", default="adapters", choices=("adapters", "spottune"))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--max-images", type=int, default=4096, help="first N images of the split, every side")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the JPEG pipeline")
    parser.add_argument("--rounds", type=int, default=10, help="ABBA rounds of new against today")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs of the JPEG pipeline")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="intra-op threads of this process (DataLoader workers always use 1); the batches "
                             "are small, so on a busy CPU more threads mostly spin against the reader thread")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.torch_threads)
    device = torch.device(args.device)
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    with tempfile.TemporaryDirectory(prefix="bench-loader-") as scratch:
        rows = [bench_domain(args, domain, device, Path(scratch)) for domain in parse_domains(args.domains)]
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"device {device}, protocol {args.protocol}, split {args.split}, batch {args.batch_size}, "
          f"JPEG DataLoader workers {args.workers}, torch threads {torch.get_num_threads()}, "
          f"{os.cpu_count()} CPUs, 1-min load average {load_before:.2f} before, {load_after:.2f} after")
    print("img/s; today = format-1 squares (the baseline), new = whole images; new/today timed ABBA")
    print(f"{'domain':<12}{'images':>7}{'jpeg':>8}{'today str':>11}{'new str':>9}{'ratio':>7}"
          f"{'today mem':>11}{'new res':>9}{'ratio':>7}{'new/jpeg':>10}  JPEGs matched")
    for r in rows:
        print(f"{r['domain']:<12}{r['images']:>7}{r['jpeg']:>8,.0f}{r['today_streamed']:>11,.0f}"
              f"{r['new_streamed']:>9,.0f}{r['new_streamed'] / r['today_streamed']:>6.2f}x{r['today_cached']:>11,.0f}"
              f"{r['new_resident']:>9,.0f}{r['new_resident'] / r['today_cached']:>6.2f}x"
              f"{r['new_resident'] / r['jpeg']:>9.1f}x  {r['matched']}")
    rates = {key: overall(rows, key) for key in ("jpeg", "today_streamed", "new_streamed", "today_cached",
                                                 "new_resident")}
    print(f"overall streamed: new {rates['new_streamed']:,.0f} vs today {rates['today_streamed']:,.0f} img/s, "
          f"ratio {rates['new_streamed'] / rates['today_streamed']:.2f}x (target >= 0.8x)")
    print(f"overall in memory: new resident {rates['new_resident']:,.0f} vs today cached "
          f"{rates['today_cached']:,.0f} img/s, ratio {rates['new_resident'] / rates['today_cached']:.2f}x "
          f"(target >= 0.8x)")
    print(f"overall vs JPEG: new resident {rates['new_resident']:,.0f} vs {rates['jpeg']:,.0f} img/s, "
          f"ratio {rates['new_resident'] / rates['jpeg']:.1f}x (target >= 10x)")


if __name__ == "__main__":
    main()
