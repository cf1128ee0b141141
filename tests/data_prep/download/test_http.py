"""`data_prep.download.http` through `download`, against a local HTTP server: dropped and reset
connections, resume with Range, servers that ignore or botch it, stalls, 5xx, 416, 404."""
from __future__ import annotations

import time

import pytest

from data_prep.download import DownloadError
from data_prep.sources import DATA_TARBALL, DEVKIT_TARBALL, IMAGENET_TARBALL


@pytest.mark.parametrize("cut", ["drop", "reset"])
def test_cut_connection_is_retried_and_resumed(fetch, mirror, tmp_path, capsys, cut):
    size = len(mirror.files[DATA_TARBALL])
    mirror.plans[DATA_TARBALL] = [cut, "normal"]
    fetch.download(tmp_path / "dest", mirror)
    fetch.assert_complete(tmp_path / "dest", mirror)
    wanted = [(wanted, status) for name, wanted, status in mirror.requests if name == DATA_TARBALL]
    err = capsys.readouterr().err
    if cut == "drop":  # an orderly close after half the bytes: a short body
        assert wanted == [(None, 200), (f"bytes={size // 2}-", 206)]
        assert (f"{DATA_TARBALL} ({mirror.url}{DATA_TARBALL}): _ShortBody: the connection closed after "
                f"{size // 2} of {size} bytes; retry 1 of 3 in 0.001 s from byte {size // 2}") in err
    else:  # a TCP reset: how much arrived before it depends on timing
        assert len(wanted) == 2 and "ConnectionResetError" in err


def test_rerun_resumes_a_partial_file(fetch, mirror, tmp_path):
    dest = fetch.dest_with_part(tmp_path, IMAGENET_TARBALL, mirror.files[IMAGENET_TARBALL][:1000], mirror)
    fetch.download(dest, mirror, files="imagenet")
    fetch.assert_complete(dest, mirror, [IMAGENET_TARBALL])
    assert mirror.requests == [(IMAGENET_TARBALL, "bytes=1000-", 206)]


def test_range_reply_from_the_wrong_offset_is_refused(fetch, mirror, tmp_path):
    dest = fetch.dest_with_part(tmp_path, DEVKIT_TARBALL, mirror.files[DEVKIT_TARBALL][:1000], mirror)
    mirror.plans[DEVKIT_TARBALL] = ["wrong_range"]
    with pytest.raises(DownloadError, match=rf"{DEVKIT_TARBALL} \(.*\): asked for the bytes from 1000, the "
                                            rf"server sent Content-Range 'bytes 0-\d+/\d+'; delete .*\.part"):
        fetch.download(dest, mirror, files="devkit")
    assert (dest / f"{DEVKIT_TARBALL}.part").stat().st_size == 1000 and not (dest / DEVKIT_TARBALL).exists()


def test_server_ignoring_range_restarts_from_zero(fetch, mirror, tmp_path, capsys):
    dest = fetch.dest_with_part(tmp_path, DEVKIT_TARBALL, b"not the start of the devkit" * 40, mirror)
    mirror.plans[DEVKIT_TARBALL] = ["ignore_range"]
    fetch.download(dest, mirror, files="devkit")
    fetch.assert_complete(dest, mirror, [DEVKIT_TARBALL])
    assert mirror.requests == [(DEVKIT_TARBALL, "bytes=1080-", 200)]
    assert "the server sent the whole file (200) instead of the bytes from 1080: the file changed since" \
        f" {dest / DEVKIT_TARBALL}.part was started, or the server ignores Range; discarding the 1080 bytes" in \
        capsys.readouterr().err


def test_server_ignoring_range_on_a_bad_line_exhausts_retries(fetch, mirror, tmp_path):
    dest = tmp_path / "dest"
    mirror.plans[DEVKIT_TARBALL] = ["ignore_range+drop"]
    with pytest.raises(DownloadError, match=rf"{DEVKIT_TARBALL} \({mirror.url}{DEVKIT_TARBALL}\): transfer "
                                            r"failed 3 times.*answered a resume with the whole file"):
        fetch.download(dest, mirror, files="devkit", retries=2)
    assert not (dest / DEVKIT_TARBALL).exists() and DEVKIT_TARBALL not in fetch.records(dest)
    assert [r[2] for r in mirror.requests] == [200, 200, 200]
    half = len(mirror.files[DEVKIT_TARBALL]) // 2
    assert (dest / f"{DEVKIT_TARBALL}.part").stat().st_size == half  # truncated each time, never appended


def test_truncated_transfer_exhausts_retries_then_resumes(fetch, mirror, tmp_path):
    dest = tmp_path / "dest"
    mirror.plans[DATA_TARBALL] = ["drop"]
    with pytest.raises(DownloadError, match=rf"{DATA_TARBALL} \(http://127.*\): transfer failed 3 times, last "
                                            r"with _ShortBody: the connection closed after \d+ of \d+ bytes; "
                                            r".*\.part keeps \d+ bytes, run again to resume"):
        fetch.download(dest, mirror, retries=2)
    fetch.assert_complete(dest, mirror, [DEVKIT_TARBALL, IMAGENET_TARBALL])  # the others were still fetched
    assert not (dest / DATA_TARBALL).exists() and DATA_TARBALL not in fetch.records(dest)
    kept = (dest / f"{DATA_TARBALL}.part").stat().st_size
    mirror.plans[DATA_TARBALL] = ["normal"]
    fetch.download(dest, mirror)
    fetch.assert_complete(dest, mirror)
    assert mirror.requests[-1] == (DATA_TARBALL, f"bytes={kept}-", 206)


def test_stalled_server_times_out_and_server_errors_are_retried(fetch, mirror, tmp_path, capsys):
    mirror.plans[DEVKIT_TARBALL] = ["stall", "normal"]
    mirror.plans[DATA_TARBALL] = ["503", "normal"]
    started = time.monotonic()
    fetch.download(tmp_path / "dest", mirror, timeout=0.3)
    assert time.monotonic() - started < mirror.stall_seconds
    fetch.assert_complete(tmp_path / "dest", mirror)
    err = capsys.readouterr().err
    assert f"{DEVKIT_TARBALL} ({mirror.url}{DEVKIT_TARBALL}): TimeoutError: timed out; retry 1 of 3" in err
    assert "HTTPError: HTTP Error 503" in err


@pytest.mark.parametrize("extra", [b"", b"junk after the end"])
def test_range_not_satisfiable(fetch, mirror, tmp_path, capsys, extra):
    data = mirror.files[DEVKIT_TARBALL]
    dest = fetch.dest_with_part(tmp_path, DEVKIT_TARBALL, data + extra, mirror)
    fetch.download(dest, mirror, files="devkit")
    fetch.assert_complete(dest, mirror, [DEVKIT_TARBALL])
    wanted = f"bytes={len(data + extra)}-"
    if extra:  # not a prefix of the file: restarted
        assert mirror.requests == [(DEVKIT_TARBALL, wanted, 416), (DEVKIT_TARBALL, None, 200)]
        assert "does not fit the file on the server" in capsys.readouterr().err
    else:      # already complete: the previous run stopped just before its rename
        assert mirror.requests == [(DEVKIT_TARBALL, wanted, 416)]
        assert f"already holds all {len(data)} bytes" in capsys.readouterr().err


@pytest.mark.parametrize("code, reason", [("404", "Not Found"), ("204", "No Content")])
def test_not_found_or_no_content(fetch, mirror, tmp_path, code, reason):
    mirror.plans[DATA_TARBALL] = [code]
    with pytest.raises(DownloadError, match=rf"^{DATA_TARBALL} \({mirror.url}{DATA_TARBALL}\): (unexpected )?"
                                            rf"HTTP {code} {reason}$"):
        fetch.download(tmp_path / "dest", mirror, files="data")
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == []


@pytest.mark.parametrize("validator", ["etag", "no_etag"])
def test_file_changed_between_runs_is_fetched_whole_not_spliced(fetch, mirror, tmp_path, capsys, validator):
    """A .part of the old version is resumed with If-Range (the ETag, else Last-Modified, of its
    first reply); the server's file has changed since, so it sends the new one whole."""
    dest, flags = tmp_path / "dest", "" if validator == "etag" else "+no_etag"
    old = mirror.files[DATA_TARBALL]
    mirror.plans[DATA_TARBALL] = ["drop" + flags]
    with pytest.raises(DownloadError, match="transfer failed 1 times"):
        fetch.download(dest, mirror, files="data", retries=0)
    assert (dest / f"{DATA_TARBALL}.part").read_bytes() == old[:len(old) // 2]
    new = bytes(b ^ 0x5A for b in old)  # the same size, every byte different
    mirror.files[DATA_TARBALL], mirror.plans[DATA_TARBALL] = new, ["normal" + flags]
    fetch.download(dest, mirror, files="data")
    fetch.assert_complete(dest, mirror, [DATA_TARBALL])  # the new file, whole
    assert mirror.requests[-1] == (DATA_TARBALL, f"bytes={len(old) // 2}-", 200)
    assert "the file changed since" in capsys.readouterr().err


def test_unchanged_file_is_resumed_with_if_range(fetch, mirror, tmp_path):
    dest, data = tmp_path / "dest", mirror.files[DATA_TARBALL]
    mirror.plans[DATA_TARBALL] = ["drop+no_etag", "normal+no_etag"]
    with pytest.raises(DownloadError):
        fetch.download(dest, mirror, files="data", retries=0)
    fetch.download(dest, mirror, files="data")
    fetch.assert_complete(dest, mirror, [DATA_TARBALL])
    assert mirror.requests[-1] == (DATA_TARBALL, f"bytes={len(data) // 2}-", 206)


@pytest.mark.parametrize("why", ["server sends no validator", "part from another address"])
def test_part_of_unknown_version_restarts_instead_of_resuming(fetch, mirror, tmp_path, capsys, why):
    dest, data = tmp_path / "dest", mirror.files[DATA_TARBALL]
    mirror.plans[DATA_TARBALL] = ["drop+no_validator" if why == "server sends no validator" else "drop"]
    with pytest.raises(DownloadError):
        fetch.download(dest, mirror, files="data", retries=0)
    assert (dest / f"{DATA_TARBALL}.part").stat().st_size == len(data) // 2
    mirror.plans[DATA_TARBALL] = ["normal"]
    if why == "part from another address":  # the same server under another name: another address
        mirror.url = mirror.url.replace("127.0.0.1", "localhost")
    fetch.download(dest, mirror, files="data")
    fetch.assert_complete(dest, mirror, [DATA_TARBALL])
    assert mirror.requests[-1] == (DATA_TARBALL, None, 200)
    assert "restarting from byte 0 rather than risk joining two versions" in capsys.readouterr().err
