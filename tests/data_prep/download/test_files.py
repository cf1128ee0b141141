"""`data_prep.download` against a local HTTP server (this folder's conftest.py): the files
and their records, refusals, checksums, the command line. No network: 127.0.0.1 only."""
from __future__ import annotations

import errno
import io
import json
import os
import tarfile
from datetime import datetime

import pytest

from data_prep.download import AccessRefused, DownloadError, RECORDS_NAME, file_url, http as http_fetch
from data_prep import PrepareError, prepare, verify
from data_prep.sources import DATA_TARBALL, DEVKIT_TARBALL, IMAGENET_TARBALL
from decathlon.data import TARGET_DOMAINS

ALL = (DEVKIT_TARBALL, DATA_TARBALL, IMAGENET_TARBALL)


def test_downloads_and_records_the_three_files(fetch, mirror, tmp_path):
    dest = tmp_path / "dest"
    records = fetch.download(dest, mirror)
    fetch.assert_complete(dest, mirror)
    assert records == json.loads((dest / RECORDS_NAME).read_text())
    for name in ALL:
        assert records[name]["url"] == mirror.url + name
        assert datetime.fromisoformat(records[name]["completed"]).tzinfo is not None
    assert [(name, wanted, status) for name, wanted, status in mirror.requests] == [
        (name, None, 200) for name in ALL]
    with tarfile.open(dest / DATA_TARBALL) as data:
        assert sorted(data.getnames()) == [f"{domain}.tar" for domain in TARGET_DOMAINS]


def test_official_addresses_and_mirror_urls():
    assert file_url(DEVKIT_TARBALL) == "http://www.robots.ox.ac.uk/~vgg/share/decathlon-1.0-devkit.tar.gz"
    assert file_url(DATA_TARBALL) == "http://www.robots.ox.ac.uk/~vgg/share/decathlon-1.0-data.tar.gz"
    assert file_url(IMAGENET_TARBALL) == ("http://www.image-net.org/image/decathlon/"
                                          "decathlon-1.0-data-imagenet.tar")
    assert file_url(DATA_TARBALL, "http://127.0.0.1:8000/x") == f"http://127.0.0.1:8000/x/{DATA_TARBALL}"
    with pytest.raises(PrepareError, match=r"--mirror 'ftp://host/': expected an http"):
        file_url(DATA_TARBALL, "ftp://host/")


def test_files_selects_and_unknown_key_is_refused(fetch, mirror, tmp_path):
    assert set(fetch.download(tmp_path / "dest", mirror, files="imagenet,devkit")) == {DEVKIT_TARBALL,
                                                                                   IMAGENET_TARBALL}
    assert not (tmp_path / "dest" / DATA_TARBALL).exists()
    with pytest.raises(PrepareError, match=r"unknown labels; choose from devkit,data,imagenet"):
        fetch.download(tmp_path / "dest", mirror, files="data,labels")
    with pytest.raises(PrepareError, match=r"--files '': unknown empty list; choose from"):
        fetch.download(tmp_path / "dest", mirror, files="")


@pytest.mark.parametrize("progress", [True, False])
def test_progress_bar_per_file_or_none(fetch, mirror, tmp_path, capsys, progress):
    fetch.download(tmp_path / "dest", mirror, progress=progress)
    err = capsys.readouterr().err
    for name in ALL:
        assert (f"{name}: 100%" in err) == progress, err
        assert f"{name}: downloaded" in err


def test_every_file_is_tried_and_failures_are_listed_together(fetch, mirror, tmp_path):
    mirror.plans[DEVKIT_TARBALL], mirror.plans[IMAGENET_TARBALL] = ["404"], ["403"]
    with pytest.raises(DownloadError) as caught:
        fetch.download(tmp_path / "dest", mirror)
    lines = str(caught.value).splitlines()
    assert type(caught.value) is DownloadError and len(lines) == 2
    assert lines[0].startswith(f"{DEVKIT_TARBALL} (") and lines[0].endswith("HTTP 404 Not Found")
    assert lines[1].startswith(f"{IMAGENET_TARBALL} (") and "ImageNet's terms" in lines[1]
    fetch.assert_complete(tmp_path / "dest", mirror, [DATA_TARBALL])


@pytest.mark.parametrize("content, problem", [("{", "not valid JSON"), ("[]", "expected an object")])
def test_unreadable_records_are_refused(fetch, mirror, tmp_path, content, problem):
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / RECORDS_NAME).write_text(content)
    with pytest.raises(PrepareError, match=rf"{tmp_path}/dest/{RECORDS_NAME}: {problem}"):
        fetch.download(tmp_path / "dest", mirror)
    assert mirror.requests == []


@pytest.mark.parametrize("name, refusal, why, terms", [
    (IMAGENET_TARBALL, "403", "HTTP 403 Forbidden", "ImageNet's terms of access apply to this file: register at "
                                                    "https://image-net.org/"),
    (IMAGENET_TARBALL, "html", "the server sent an HTML page (Content-Type text/html) instead of the file",
     "ImageNet's terms of access apply"),
    (DEVKIT_TARBALL, "401", "HTTP 401 Unauthorized", "the server asks for a login or accepted terms; see the "
                                                     "benchmark page https://www.robots.ox.ac.uk/~vgg/decathlon/"),
])
def test_login_or_terms_message(fetch, mirror, tmp_path, name, refusal, why, terms):
    dest = tmp_path / "dest"
    mirror.plans[name] = [refusal]
    with pytest.raises(AccessRefused) as caught:
        fetch.download(dest, mirror)
    message = str(caught.value)
    assert message.startswith(f"{name} ({mirror.url}{name}): {why}") and f"; {terms}" in message
    assert f"put {name} into {dest} by hand" in message and message.endswith("--mirror URL")
    assert sorted(p.name for p in dest.iterdir()) == sorted({*ALL, RECORDS_NAME} - {name})  # no .part


def test_rerun_checks_and_skips_without_any_request(fetch, mirror, tmp_path, capsys):
    first = fetch.download(tmp_path / "dest", mirror)
    mirror.requests.clear()
    assert fetch.download(tmp_path / "dest", mirror) == first
    assert mirror.requests == []
    assert f"{DATA_TARBALL}: present and matches {RECORDS_NAME}" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupted_file_is_moved_aside_then_fetched_again(fetch, mirror, tmp_path, damage):
    dest = tmp_path / "dest"
    records = fetch.download(dest, mirror)
    data = mirror.files[DATA_TARBALL]
    broken = data[:100] + bytes([data[100] ^ 1]) + data[101:] if damage == "flip" else data[:-10]
    (dest / DATA_TARBALL).write_bytes(broken)
    field, expected, found = (("sha256", fetch.sha(data), fetch.sha(broken)) if damage == "flip"
                              else ("size", len(data), len(broken)))
    with pytest.raises(DownloadError, match=rf"^{DATA_TARBALL} \(.*\): {field} mismatch: expected {expected} "
                                            rf".*found {found}; moved to .*\.mismatch; run again"):
        fetch.download(dest, mirror)
    assert not (dest / DATA_TARBALL).exists()
    assert (dest / f"{DATA_TARBALL}.mismatch").read_bytes() == broken
    os.remove(dest / f"{DATA_TARBALL}.mismatch")
    assert fetch.download(dest, mirror)[DATA_TARBALL]["sha256"] == records[DATA_TARBALL]["sha256"]
    fetch.assert_complete(dest, mirror)


def test_fresh_download_must_match_the_record(fetch, mirror, tmp_path):
    dest = tmp_path / "dest"
    recorded = fetch.download(dest, mirror, files="devkit")[DEVKIT_TARBALL]
    (dest / DEVKIT_TARBALL).unlink()
    changed = bytearray(mirror.files[DEVKIT_TARBALL])
    changed[-1] ^= 1
    mirror.files[DEVKIT_TARBALL] = bytes(changed)
    with pytest.raises(DownloadError, match=r"sha256 mismatch: .*the file at this address differs from the one "
                                            r"recorded; if the new one is right, delete its entry"):
        fetch.download(dest, mirror, files="devkit")
    assert not (dest / DEVKIT_TARBALL).exists() and not (dest / f"{DEVKIT_TARBALL}.part").exists()
    assert (dest / f"{DEVKIT_TARBALL}.mismatch").read_bytes() == bytes(changed)
    assert fetch.records(dest)[DEVKIT_TARBALL] == recorded


def test_file_put_in_by_hand_is_hashed_and_recorded(fetch, mirror, tmp_path, capsys):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / IMAGENET_TARBALL).write_bytes(mirror.files[IMAGENET_TARBALL])
    records = fetch.download(dest, mirror, files="imagenet")
    assert mirror.requests == []
    assert records[IMAGENET_TARBALL]["url"] is None
    assert records[IMAGENET_TARBALL]["sha256"] == fetch.sha(mirror.files[IMAGENET_TARBALL])
    assert f"not in {RECORDS_NAME} (put there by hand?): hashing it and recording it" in capsys.readouterr().err
    (dest / IMAGENET_TARBALL).write_bytes(b"other")
    with pytest.raises(DownloadError, match="size mismatch"):  # from now on it is checked like a download
        fetch.download(dest, mirror, files="imagenet")


def test_disk_full_keeps_only_the_part(fetch, mirror, tmp_path, monkeypatch):
    class FullDisk(io.FileIO):
        def write(self, chunk):
            super().write(chunk[:100])
            raise OSError(errno.ENOSPC, "No space left on device")

    dest = tmp_path / "dest"
    monkeypatch.setattr(http_fetch, "open", lambda path, mode: (open if "r" in mode else FullDisk)(path, mode),
                        raising=False)
    with pytest.raises(DownloadError, match=rf"^{DEVKIT_TARBALL} \({mirror.url}{DEVKIT_TARBALL}\): disk full "
                                            rf"while writing {dest}/{DEVKIT_TARBALL}\.part \(No space left on "
                                            rf"device\); free space in {dest} and run again to resume from the "
                                            r"100 bytes kept"):
        fetch.download(dest, mirror, files="devkit")
    assert sorted(p.name for p in dest.iterdir()) == [f"{DEVKIT_TARBALL}.part", f"{DEVKIT_TARBALL}.part.json"]
    assert len(mirror.requests) == 1  # not retried: a full disk is not a network failure
    monkeypatch.undo()
    fetch.download(dest, mirror, files="devkit")
    fetch.assert_complete(dest, mirror, [DEVKIT_TARBALL])
    assert mirror.requests[-1] == (DEVKIT_TARBALL, "bytes=100-", 206)


def test_downloaded_folder_is_a_prepare_source(fetch, pristine, make_tarballs, serve, tmp_path):
    mirror = serve(make_tarballs(pristine.root, tmp_path / "served", inner_prefix="decathlon-1.0/data/"))
    dest, out = tmp_path / "dest", tmp_path / "out"
    fetch.download(dest, mirror)
    manifest = prepare(dest, out, domains="aircraft,imagenet12", shard_size=pristine.shard_size, progress=False)
    assert sorted(manifest["domains"]) == ["aircraft", "imagenet12"]
    assert verify(out).ok


def test_command_line_downloads_then_reports_errors_with_exit_2(fetch, mirror, tmp_path, capsys):
    from data_prep.__main__ import main

    dest = tmp_path / "dest"
    assert main(["download", str(dest), "--mirror", mirror.url, "--quiet", "--retries", "0"]) == 0
    assert f"next: make prepare-data SOURCE={dest}" in capsys.readouterr().out
    fetch.assert_complete(dest, mirror)
    mirror.files.pop(DEVKIT_TARBALL)
    assert main(["download", str(tmp_path / "other"), "--mirror", mirror.url, "--quiet", "--files", "devkit",
                 "--retries", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "404" in err and not (tmp_path / "other" / DEVKIT_TARBALL).exists()
