"""Loader throughput: prepared HDF5 shards + ShardLoader against the public codes' JPEG pipeline.

Both sides deliver the same images as ready, normalised batches on --device:
- jpeg: a torchvision.datasets-style Dataset (one JPEG per __getitem__, PIL decode,
  torchvision Resize / crop / flip / ToTensor / Normalize) in a torch DataLoader with
  --workers worker processes, as the SpotTune and residual-adapter codes do;
- shards: decathlon.data.loader.ShardLoader (contiguous chunk reads, batched augmentation).
Each side runs one untimed warm-up epoch (page cache, workers' imports), then the best of
--repeats timed epochs is reported.

    python bench/bench_loader.py --jpeg-root data/decathlon-1.0 --shards data/prepared \\
        --domains aircraft,cifar100
"""
from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from decathlon.data.domains import ANNOTATION_FILES, get_domain, parse_domains
from decathlon.data.loader import ShardLoader
from decathlon.data.transforms import NETWORK_SIDE, augmentation_spec


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
    steps = [transforms.Resize(spec.resize_hw or NETWORK_SIDE)]
    if spec.random_crop:
        steps.append(transforms.RandomCrop(spec.crop_hw))
    else:  # the public codes centre-crop to the network input, 72 when they do not crop
        steps.append(transforms.CenterCrop(spec.output_hw))
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


def drain(batches, device: torch.device) -> int:
    """Bring every batch to `device` and wait for it; the number of images."""
    count = 0
    for images, labels, *_ in batches:
        images = images.to(device, non_blocking=True)
        labels.to(device, non_blocking=True)
        count += len(images)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return count


def bench_domain(args, domain: str, device: torch.device) -> dict:
    shards = ShardLoader(args.shards, domain, args.split, args.batch_size, train=True, protocol=args.protocol,
                         shuffle=True, seed=0, drop_last=False, device=device, max_images=args.max_images)
    ids, labels = [], []
    for _, batch_labels, batch_ids in shards:
        ids += batch_ids.tolist()
        labels += batch_labels.tolist()
    files, matched = jpeg_files_for(args.jpeg_root, domain, args.split, ids)
    dataset = JpegFolder(files, labels, torchvision_pipeline(domain, args.protocol, train=True))
    jpeg = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                      pin_memory=device.type == "cuda")
    epochs = itertools.count(1)

    def shard_epoch() -> int:
        shards.set_epoch(next(epochs))
        return drain(shards, device)

    return {"domain": domain, "images": len(ids), "matched": matched,
            "jpeg": best_epoch_rate(lambda: drain(jpeg, device), args.repeats),
            "shards": best_epoch_rate(shard_epoch, args.repeats)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jpeg-root", type=Path, required=True, help="the decathlon-1.0 folder (data/, annotations/)")
    parser.add_argument("--shards", type=Path, required=True, help="the prepared folder (manifest.json)")
    parser.add_argument("--domains", default="aircraft,cifar100")
    parser.add_argument("--split", default="train")
    parser.add_argument("--protocol", default="adapters", choices=("adapters", "spottune"))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--max-images", type=int, default=4096, help="first N images of the split, both sides")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the JPEG pipeline")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="intra-op threads of this process (DataLoader workers always use 1); the batches "
                             "are small, so on a busy CPU more threads mostly spin against the reader thread")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.torch_threads)
    device = torch.device(args.device)
    rows = [bench_domain(args, domain, device) for domain in parse_domains(args.domains)]
    print(f"device {device}, protocol {args.protocol}, split {args.split}, batch {args.batch_size}, "
          f"JPEG DataLoader workers {args.workers}, torch threads {torch.get_num_threads()}")
    print(f"{'domain':<14}{'images':>8}{'jpeg img/s':>13}{'shards img/s':>15}{'ratio':>8}  JPEGs matched")
    for row in rows:
        print(f"{row['domain']:<14}{row['images']:>8}{row['jpeg']:>13,.0f}{row['shards']:>15,.0f}"
              f"{row['shards'] / row['jpeg']:>7.1f}x  {row['matched']}")
    total = sum(r["images"] for r in rows)
    jpeg_s, shard_s = (sum(r["images"] / r[key] for r in rows) for key in ("jpeg", "shards"))
    print(f"overall: {total / jpeg_s:,.0f} vs {total / shard_s:,.0f} img/s, "
          f"ratio {jpeg_s / shard_s:.1f}x (target >= 10x)")


if __name__ == "__main__":
    main()
