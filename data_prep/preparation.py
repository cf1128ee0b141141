"""Turn the Decathlon as distributed into checksummed HDF5 shards and a manifest.

Flow: lock the output folder (a second preparation into it is refused, naming the
first); read and check every requested annotation file (attaching test labels when
given); decide per split what is already done (manifest entry or progress file, each
shard's sha256 re-checked); stream the images of the pending splits from the source;
decode them in a pool of worker processes; write each into its slot of a preallocated
temporary shard (data_prep.split_writer). The manifest lists a split only once all its
shards are final, and is rewritten atomically after each completed split; progress
files record finished shards in between. Nothing half-written survives an error or
Ctrl-C: unfinished shards exist only as temporaries, deleted on the way out and, after
a killed run, at the start of the next. Only files the records name are ever deleted
(data_prep.owned_files); a folder holding a file that preparation would replace but did
not write is refused.
"""
from __future__ import annotations

import collections
import itertools
import multiprocessing
import secrets
from pathlib import Path

import numpy as np
from tqdm import tqdm

from decathlon.data import (AnnotationError, FORMAT_VERSION, MANIFEST_NAME, ManifestError, ManifestVersionError, SPLITS,
                            get_domain, parse_annotations, parse_domains, read_manifest)
from decathlon.data.domains import ANNOTATION_FILES, LABELLED_TEST_FILE, SHORT_SIDE
from decathlon.data.manifest import load_manifest_json
from decathlon.files import FolderLockedError, OutputError, folder_lock, write_json_atomic
from data_prep.decode import STORAGE, DecodeTask, decode_batch, ignore_sigint
from data_prep.errors import PrepareError
from data_prep.owned_files import (owned_shards, progress_path, read_progress, recorded_in_manifest,
                                   refuse_unrecorded_shards, remove_own_temporaries)
from data_prep.sources import Source, read_test_labels
from data_prep.split_writer import (SplitPlan, SplitWriter, journal_records, manifest_fingerprint,
                                    split_fingerprint, verified_records)

# ~64-130 MB of whole images (72x72 to ~72x140 on average): a unit that is quick to hash
# and cheap to rebuild on resume, and big enough that imagenet12 train is only ~300 files.
DEFAULT_SHARD_SIZE = 4096
BATCH_SIZE = 64  # images per task sent to a worker


def prepare(source: Path, out: Path, domains=None, test_labels: Path | None = None, workers: int = 2,
            shard_size: int = DEFAULT_SHARD_SIZE, progress: bool = True) -> dict:
    """Prepare `domains` (names, 'a,b' or None for all ten) of `source` into `out`.

    Returns the manifest. Raises PrepareError on bad input, naming file and entry."""
    if workers < 1 or shard_size < 1:
        raise PrepareError(f"workers ({workers}) and shard size ({shard_size}) must be at least 1")
    try:
        names = parse_domains(domains if domains is None or isinstance(domains, str) else ",".join(domains))
    except KeyError as err:
        raise PrepareError(err.args[0]) from None
    try:
        with folder_lock(out, "preparation folder"):
            return _prepare(Source(source, names), Path(out), names, test_labels, workers, shard_size, progress)
    except (AnnotationError, ManifestError, OutputError, FolderLockedError) as err:
        raise PrepareError(str(err)) from None


def _prepare(source: Source, out: Path, names: tuple, test_labels, workers: int, shard_size: int,
             progress: bool) -> dict:
    manifest, recorded, outdated = _open_manifest(out, source)
    plans = {name: _plan_domain(out, manifest, name, _load_domain(source, name, test_labels), shard_size, recorded)
             for name in names}  # refuses before anything is deleted or written
    remove_own_temporaries(out, set(manifest["domains"]) | {domain for domain, _ in recorded})
    if outdated:  # no shard of an older format is readable now; the old manifest lists them until replaced
        for (domain, split), files in recorded.items():
            for file in owned_shards(out, domain, split, files, None):
                (out / file).unlink(missing_ok=True)
    for name in names:  # complete splits: their progress files go (after the temporaries they name)
        for split in manifest["domains"][name]["splits"]:
            progress_path(out, name, split).unlink(missing_ok=True)
    run = secrets.token_hex(4)  # names this run's temporaries; recorded in each progress file first
    writers = {name: {split: SplitWriter(out, plan, shard_size, run) for split, plan in pending.items()}
               for name, pending in plans.items() if pending}
    write_json_atomic(out / MANIFEST_NAME, manifest)  # incomplete splits leave it before any shard changes
    try:
        for name, split_writers in writers.items():
            for writer in split_writers.values():
                writer.remove_stale_shards()
            _commit_complete(out, manifest, name, split_writers)
        to_stream = {name: w for name, w in writers.items() if any(not s.complete for s in w.values())}
        if to_stream:
            _stream(source, out, manifest, to_stream, workers, progress)
    finally:
        for split_writers in writers.values():
            for writer in split_writers.values():
                writer.discard_open_shards()
    return manifest


def _open_manifest(out: Path, source: Source) -> tuple:
    """(the manifest to extend, {(domain, split): shard files} the folder's manifest lists,
    whether that manifest is of an older format).

    The manifest is the folder's own, or a new one where there is none or it is of an older
    format (all its shards are then deleted: none matches the new storage)."""
    path = out / MANIFEST_NAME
    fresh = {"format_version": FORMAT_VERSION, "synthetic": source.synthetic, "source": str(source.path),
             "domains": {}}
    if not path.exists():
        return fresh, {}, False
    try:
        manifest, outdated = read_manifest(out), False
        recorded = recorded_in_manifest(manifest)
    except ManifestVersionError:
        old = load_manifest_json(out)
        manifest, recorded, outdated = {**fresh, "synthetic": old.get("synthetic")}, recorded_in_manifest(old), True
    if manifest.get("synthetic") != source.synthetic:
        kinds = {True: "synthetic", False: "real"}
        raise PrepareError(f"{path}: holds {kinds[bool(manifest.get('synthetic'))]} data but {source.path} "
                           f"is {kinds[source.synthetic]}; prepare it into another output folder")
    manifest["source"] = str(source.path)
    return manifest, recorded, outdated


def _load_domain(source: Source, name: str, test_labels) -> dict:
    """{split: (annotations, annotation file name)}, with labels attached to test if given."""
    splits = {}
    for split in SPLITS:
        file_name = ANNOTATION_FILES[split].format(domain=name)
        ann = parse_annotations(*source.annotation(file_name), name, split)
        if split == "test" and test_labels is not None:
            ann, file_name = _attach_labels(ann, read_test_labels(test_labels, name)), \
                LABELLED_TEST_FILE.format(domain=name)
        splits[split] = (ann, file_name)
    first = splits[SPLITS[0]][0]
    for ann, _ in splits.values():
        if ann.class_names != first.class_names:
            raise PrepareError(f"{ann.source}: categories differ from those of {first.source}")
    return splits


def _attach_labels(stripped, labelled):
    """The labelled test file, once it is known to list exactly the stripped file's images."""
    if not labelled.labels_known:
        raise PrepareError(f"{labelled.source}: has no labels")
    if len(stripped.image_ids) != len(labelled.image_ids) or stripped.file_names != labelled.file_names \
            or not np.array_equal(stripped.image_ids, labelled.image_ids):
        common = min(len(stripped.image_ids), len(labelled.image_ids))
        i = next((i for i in range(common) if stripped.image_ids[i] != labelled.image_ids[i]
                  or stripped.file_names[i] != labelled.file_names[i]), common)
        raise PrepareError(f"{labelled.source} does not list the same images in the same order as "
                           f"{stripped.source}: first difference at images[{i}]: "
                           f"{_entry_or_end(labelled, i)} vs {_entry_or_end(stripped, i)}; give --test-labels "
                           f"with the labels of this source, or --no-test-labels to keep its test split unlabelled")
    return labelled


def _entry_or_end(ann, i: int) -> str:
    return ann.entry(i) if i < len(ann.image_ids) else f"end of file ({len(ann.image_ids)} images)"


def _plan_domain(out: Path, manifest: dict, name: str, splits: dict, shard_size: int, recorded: dict) -> dict:
    """Keep the complete, verified splits in the manifest; return {split: SplitPlan} for the
    others, after refusing any file under their shard names that the records do not list."""
    domain = get_domain(name)
    old = manifest["domains"].get(name)
    kept, pending = {}, {}
    for split, (ann, annotation_file) in splits.items():
        fingerprint = split_fingerprint(ann, annotation_file, shard_size)
        entry = old.get("splits", {}).get(split) if isinstance(old, dict) else None
        from_manifest = entry is not None and manifest_fingerprint(old, entry) == fingerprint
        journal = read_progress(out, name, split)
        records = dict(enumerate(entry["shards"])) if from_manifest else journal_records(journal, fingerprint)
        verified = verified_records(out, name, split, records, fingerprint["shard_counts"])
        if from_manifest and len(verified) == len(fingerprint["shard_counts"]):
            kept[split] = entry
            continue
        owned = owned_shards(out, name, split, recorded.get((name, split), set()), journal)
        refuse_unrecorded_shards(out, name, split, owned)
        reused_files = {record["file"] for record in verified.values()}
        stale = sorted(file for file in owned - reused_files if (out / file).exists())
        pending[split] = SplitPlan(ann, annotation_file, verified, stale)
    class_names = splits[SPLITS[0]][0].class_names
    manifest["domains"][name] = {
        "index": domain.index, "num_classes": len(class_names), "class_names": class_names,
        "short_side": SHORT_SIDE, "storage": STORAGE,
        "mean": list(domain.mean), "std": list(domain.std), "splits": kept}
    return pending


def _commit_complete(out: Path, manifest: dict, name: str, split_writers: dict) -> None:
    """Move every complete, not yet listed split into the manifest."""
    splits = manifest["domains"][name]["splits"]
    for split, writer in split_writers.items():
        if writer.complete and split not in splits:
            splits[split] = writer.manifest_entry()
            manifest["domains"][name]["splits"] = splits = {s: splits[s] for s in SPLITS if s in splits}
            write_json_atomic(out / MANIFEST_NAME, manifest)
            writer.remove_progress()


def _decode_tasks(name: str, members, split_writers: dict):
    """DecodeTasks for the members that belong to pending shards; bad members raise."""
    for member in members:
        parts = member.file_name.split("/")
        split = parts[2] if len(parts) == 4 else None
        writer = split_writers.get(split)
        if writer is None:
            if split in SPLITS:
                continue  # that split is complete already
            raise PrepareError(f"{member.origin}: not an image of data/{name}/<train|val|test>/NNNNNN.jpg")
        position = writer.position_of(member.file_name)
        if position < 0:
            raise PrepareError(f"{member.origin}: image without annotation: {writer.ann.source} "
                               f"lists no {member.file_name}")
        if writer.claim(position, member.origin):
            yield DecodeTask((split, position), member.origin, writer.entry(position), member.read(),
                             int(writer.ann.widths[position]), int(writer.ann.heights[position]))


def _batches(items, size: int = BATCH_SIZE):
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _bounded_map(pool, func, batches, window: int):
    """pool.imap with at most `window` batches in flight. imap itself would not do: its
    feeder thread reads the whole input ahead into memory (1.2M images for imagenet12)."""
    in_flight = collections.deque()
    for batch in batches:
        in_flight.append(pool.apply_async(func, (batch,)))
        if len(in_flight) >= window:
            yield in_flight.popleft().get()
    while in_flight:
        yield in_flight.popleft().get()


def _stream(source: Source, out: Path, manifest: dict, writers: dict, workers: int, progress: bool) -> None:
    pending = {name: {split for split, writer in split_writers.items() if not writer.complete}
               for name, split_writers in writers.items()}
    with multiprocessing.Pool(workers, initializer=ignore_sigint) as pool:
        for name, members in source.domain_members(pending):
            split_writers = writers[name]
            bars = {split: tqdm(total=len(w.ann.image_ids), initial=w.done_images, desc=f"{name}/{split}",
                                unit="img", disable=not progress) for split, w in split_writers.items()}
            try:
                tasks = _decode_tasks(name, members, split_writers)
                for results in _bounded_map(pool, decode_batch, _batches(tasks), window=2 * workers + 2):
                    for (split, position), image in results:
                        split_writers[split].write(position, image)
                        bars[split].update()
                        if split_writers[split].complete:
                            _commit_complete(out, manifest, name, split_writers)
            finally:
                for bar in bars.values():
                    bar.close()
            _raise_missing(source, name, split_writers)


def _raise_missing(source: Source, name: str, split_writers: dict) -> None:
    problems = []
    for split, writer in split_writers.items():
        missing = writer.missing()
        if len(missing):
            position = int(missing[0])
            problems.append(f"missing JPEG {source.missing_reason(name, writer.ann.file_names[position])}; "
                            f"entry {writer.entry(position)} ({len(missing)} images of {name}/{split} missing)")
    if problems:
        raise PrepareError("\n".join(problems))
