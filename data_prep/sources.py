"""Where images and annotations come from: an extracted folder or the downloaded tarballs.

A source path is either
  * an extracted `decathlon-1.0` folder (annotations/ + data/<domain>/<split>/NNNNNN.jpg)
    or its parent, or
  * a folder holding the downloads: decathlon-1.0-devkit.tar.gz (annotations),
    decathlon-1.0-data.tar.gz (nine inner tars aircraft.tar ... vgg-flowers.tar) and
    decathlon-1.0-data-imagenet.tar.
Each part is looked up on its own (annotations/ folder, else the devkit; data/<domain>/
folder, else its tarball), so a half-extracted download works too. Tarballs are read as
streams ('r|*'; inner tars opened from the outer stream), never extracted to disk.

Images are yielded as `Member`s in the source's own order (tar order is arbitrary);
the caller matches them to annotation entries. A tar member's bytes can only be read
before the stream moves on, so a caller calls `member.read()` at once or never.
"""
from __future__ import annotations

import os
import re
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from decathlon.data import SOURCE_DOMAIN, SPLITS, SplitAnnotations, parse_annotations
from decathlon.data.domains import ANNOTATION_FILES, LABELLED_TEST_FILE
from data_prep.errors import PrepareError

DEVKIT_TARBALL = "decathlon-1.0-devkit.tar.gz"
DATA_TARBALL = "decathlon-1.0-data.tar.gz"
IMAGENET_TARBALL = "decathlon-1.0-data-imagenet.tar"
SYNTHETIC_MARKER = "SYNTHETIC.json"
# Member names may carry a leading './', 'decathlon-1.0/' and/or 'data/'.
_MEMBER_PREFIX = re.compile(r"^(?:\./)?(?:decathlon-1\.0/)?(?:data/)?")
_TAR_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError)


@dataclass
class Member:
    file_name: str                  # 'data/<domain>/<split>/NNNNNN.jpg', as annotations spell it
    origin: str                     # file path or 'tarball!inner.tar!member', for error messages
    read: Callable[[], bytes]


def _tar_entries(label: str, path: Path | None = None, fileobj=None) -> Iterator:
    """(tar, member info) for each member of a tar stream; read errors name the tarball."""
    last = None
    try:
        with tarfile.open(name=path, fileobj=fileobj, mode="r|*") as tar:
            for info in tar:
                last = info.name
                yield tar, info
    except _TAR_ERRORS as err:
        where = f"in or after member {last!r}" if last else "before its first member"
        raise PrepareError(f"{label}: truncated or corrupt tarball, failed {where} "
                           f"({type(err).__name__}: {err})") from None


def _member_reader(tar: tarfile.TarFile, info: tarfile.TarInfo, label: str) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            return tar.extractfile(info).read()
        except _TAR_ERRORS as err:
            raise PrepareError(f"{label}: truncated or corrupt tarball while reading member "
                               f"{info.name!r} ({type(err).__name__}: {err})") from None
    return read


class Source:
    """The images and annotation files of the requested domains, wherever they are."""

    def __init__(self, path: Path, domains: tuple):
        self.path = Path(path).resolve()
        if not self.path.is_dir():
            raise PrepareError(f"{self.path}: source folder not found")
        extracted = any((self.path / part).is_dir() for part in ("annotations", "data"))
        self.root = self.path if extracted else self.path / "decathlon-1.0"
        self.synthetic = (self.root / SYNTHETIC_MARKER).is_file()
        self._devkit_files = None
        if not (self.root / "annotations").is_dir():
            self._read_devkit(domains)
        self.image_origin = {domain: self._image_origin(domain) for domain in domains}

    def _tarball(self, name: str, needed_for: str) -> Path:
        path = self.path / name
        if not path.is_file():
            raise PrepareError(f"{self.path}: found neither {self.root / needed_for} nor {name}")
        return path

    def _image_origin(self, domain: str) -> Path:
        folder = self.root / "data" / domain
        if folder.is_dir():
            return folder
        tarball = IMAGENET_TARBALL if domain == SOURCE_DOMAIN else DATA_TARBALL
        return self._tarball(tarball, f"data/{domain}")

    def _read_devkit(self, domains: tuple) -> None:
        devkit = self._tarball(DEVKIT_TARBALL, "annotations")
        wanted = {ANNOTATION_FILES[split].format(domain=d) for d in domains for split in SPLITS}
        self._devkit_files = {}
        for tar, info in _tar_entries(str(devkit), path=devkit):
            name = info.name.removeprefix("./").removeprefix("decathlon-1.0/")
            if name == SYNTHETIC_MARKER:
                self.synthetic = True
            elif info.isfile() and name.startswith("annotations/") and Path(name).name in wanted:
                self._devkit_files[Path(name).name] = (_member_reader(tar, info, str(devkit))(),
                                                       f"{devkit}!{info.name}")

    def annotation(self, file_name: str) -> tuple:
        """(bytes, origin) of annotations/<file_name>."""
        if self._devkit_files is None:
            path = self.root / "annotations" / file_name
            if not path.is_file():
                raise PrepareError(f"{path}: annotation file not found")
            return path.read_bytes(), str(path)
        if file_name not in self._devkit_files:
            raise PrepareError(f"{self.path / DEVKIT_TARBALL}: no member annotations/{file_name}")
        return self._devkit_files[file_name]

    def missing_reason(self, domain: str, file_name: str) -> str:
        origin = self.image_origin[domain]
        if origin.is_dir():
            return f"{self.root / file_name}: file absent"
        inner = "" if domain == SOURCE_DOMAIN else f"!{domain}.tar"
        return f"{file_name}: never seen in {origin}{inner}"

    def domain_members(self, pending: dict) -> Iterator:
        """(domain, iterator of Members) for each domain of {domain: splits to read}.

        Folders list only the pending splits; a tar stream yields all its members (consume
        each domain's iterator before asking for the next domain)."""
        in_tarballs = [d for d in pending if not self.image_origin[d].is_dir()]
        for domain in pending:
            if domain not in in_tarballs:
                yield domain, self._folder_members(domain, pending[domain])
        inner = [d for d in in_tarballs if d != SOURCE_DOMAIN]
        if inner:
            yield from self._data_tarball_members(inner)
        if SOURCE_DOMAIN in in_tarballs:
            tarball = self.image_origin[SOURCE_DOMAIN]
            yield SOURCE_DOMAIN, self._tar_members(SOURCE_DOMAIN, str(tarball), path=tarball)

    def _folder_members(self, domain: str, splits) -> Iterator:
        for split in (s for s in SPLITS if s in splits):
            folder = self.root / "data" / domain / split
            for name in sorted(os.listdir(folder)) if folder.is_dir() else ():
                path = folder / name
                yield Member(f"data/{domain}/{split}/{name}", str(path), path.read_bytes)

    def _data_tarball_members(self, domains: list) -> Iterator:
        tarball = self.image_origin[domains[0]]
        seen = set()
        for tar, info in _tar_entries(str(tarball), path=tarball):
            domain = Path(info.name).name.removesuffix(".tar")
            if info.isfile() and info.name.endswith(".tar") and domain in domains:
                seen.add(domain)
                label = f"{tarball}!{info.name}"
                yield domain, self._tar_members(domain, label, fileobj=tar.extractfile(info))
        for domain in domains:
            if domain not in seen:
                raise PrepareError(f"{tarball}: has no inner tar {domain}.tar")

    @staticmethod
    def _tar_members(domain: str, label: str, path: Path | None = None, fileobj=None) -> Iterator:
        for tar, info in _tar_entries(label, path=path, fileobj=fileobj):
            if not info.isfile():
                continue
            relative = _MEMBER_PREFIX.sub("", info.name, count=1)
            if not relative.startswith(f"{domain}/"):
                raise PrepareError(f"{label}!{info.name}: unexpected member, expected "
                                   f"{domain}/<split>/NNNNNN.jpg (optionally under data/)")
            yield Member(f"data/{relative}", f"{label}!{info.name}", _member_reader(tar, info, label))


def read_test_labels(path: Path, domain: str) -> SplitAnnotations:
    """The labelled `<domain>_test.json` from a zip (e.g. labels_test.zip) or a folder."""
    path, name = Path(path), LABELLED_TEST_FILE.format(domain=domain)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if Path(m).name == name]
            if members:
                return parse_annotations(archive.read(members[0]), f"{path}!{members[0]}", domain, "test")
    elif path.is_dir():
        files = sorted(path.rglob(name))
        if files:
            return parse_annotations(files[0].read_bytes(), str(files[0]), domain, "test")
    else:
        raise PrepareError(f"{path}: test labels must be a zip or a folder of <domain>_test.json files")
    raise PrepareError(f"{path}: has no {name}")
