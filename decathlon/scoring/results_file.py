"""Reading a results.json, plain or inside a zip, with limits a hostile file cannot pass.

The largest legitimate file is a full submission: TOTAL_TEST_IMAGES (139,760) entries
`{"image_id": int, "category_id": int}`, about 50 bytes each written compactly. The
limit allows RESULTS_ENTRY_BYTES per entry (five times that, room for indentation and
spacing), so no real submission is refused while a zip bomb (a small member that
inflates to gigabytes) or an oversized plain file is refused before it fills memory.
A zip member is read with a bounded read, so a header that understates its size does
not get past the limit either. JSON nested too deeply for the parser is refused too.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

from decathlon.files import parse_json
from decathlon.data.domains import TOTAL_TEST_IMAGES

RESULTS_MEMBER = "results.json"  # the name the server expects inside the uploaded zip
RESULTS_ENTRY_BYTES = 256
MAX_RESULTS_BYTES = TOTAL_TEST_IMAGES * RESULTS_ENTRY_BYTES


class ResultsError(ValueError):
    """A results file or list that the evaluation server would reject."""


def _too_large(path, size_text: str) -> ResultsError:
    return ResultsError(f"{path}: {size_text}, more than the {MAX_RESULTS_BYTES:,} bytes any full submission "
                        f"needs ({TOTAL_TEST_IMAGES:,} entries); not a results file")


def _zip_member_bytes(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        members = [m for m in archive.infolist() if m.filename.endswith(".json")]
        if len(members) != 1:
            raise ResultsError(f"{path}: expected one .json member in the zip, found "
                               f"{[m.filename for m in members]}")
        member = members[0]
        if member.file_size > MAX_RESULTS_BYTES:
            raise _too_large(path, f"member {member.filename} inflates to {member.file_size:,} bytes")
        with archive.open(member) as f:
            data = f.read(MAX_RESULTS_BYTES + 1)
        if len(data) > MAX_RESULTS_BYTES:
            raise _too_large(path, f"member {member.filename} inflates to more than its header says")
        return data


def read_results(path) -> list:
    """The JSON of a results.json, or of the one .json member of a zip (checked by the
    caller); ResultsError naming the file for anything that cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"{path}: results file not found")
    try:
        if zipfile.is_zipfile(path):
            data = _zip_member_bytes(path)
        elif path.stat().st_size > MAX_RESULTS_BYTES:
            raise _too_large(path, f"{path.stat().st_size:,} bytes")
        else:
            data = path.read_bytes()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise ResultsError(f"{path}: cannot read the zip ({type(err).__name__}: {err})") from None
    return parse_json(data, path, 'a flat list of {"image_id": int, "category_id": int} objects', ResultsError)
