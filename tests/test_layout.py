"""The repository stands alone and its packages follow the data flow.

- No tracked file refers to a path outside the checkout (a user's clone has nothing
  beside it); tests/conftest.py also watches, at run time, that no test opens a file in
  the checkout's parent folder outside the checkout.
- Imports follow the layers, and nothing imports upward:

      files, resources -> data -> models -> jobdir -> checkpoints -> methods -> engine
          -> inference -> launch -> benchmark -> scoring, report -> cli

  data_prep and baselines stand on data; scoring and report read job records and never
  the training code (engine, methods, checkpoints, benchmark).
- Every source file stays readable in one sitting (under 300 lines).
"""
import ast
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOW = {"decathlon.files", "decathlon.resources"}
DATA = LOW | {"decathlon.data"}
JOBDIR = DATA | {"decathlon.models", "decathlon.jobdir"}
CHECKPOINTS = JOBDIR | {"decathlon.checkpoints"}
METHODS = CHECKPOINTS | {"decathlon.methods"}
ENGINE = METHODS | {"decathlon.engine"}
# What each layer may import from the project (besides itself); decathlon.cli and the root
# scripts (run_decathlon.py, bench/) sit on top and may import anything.
ALLOWED = {
    "decathlon.files": set(),
    "decathlon.resources": set(),
    "decathlon.data": LOW,
    "baselines": {"decathlon.data"},
    "data_prep": DATA,
    "decathlon.models": set(),
    "decathlon.jobdir": LOW,   # atomic writes (decathlon.files)
    "decathlon.checkpoints": JOBDIR,
    "decathlon.methods": CHECKPOINTS,
    "decathlon.engine": METHODS,
    "decathlon.inference": CHECKPOINTS,
    "decathlon.launch": ENGINE | {"decathlon.inference"},
    "decathlon.benchmark": ENGINE | {"decathlon.inference", "decathlon.launch"},
    "decathlon.scoring": DATA | {"baselines"},
    "decathlon.report": DATA | {"decathlon.jobdir", "decathlon.scoring", "baselines"},
}
MAX_LINES = 300


def _tracked_files() -> list:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False)
    if listed.returncode != 0:  # not a git checkout (an unpacked sdist): every file but the venv
        return [p for p in ROOT.rglob("*") if p.is_file() and ".venv" not in p.parts and ".git" not in p.parts]
    return [ROOT / name for name in listed.stdout.decode().split("\0") if name]


def _layer(module: str) -> str | None:
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def _project_imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def test_no_tracked_file_refers_outside_the_checkout():
    # Spelled in pieces so that this file does not match itself.
    needles = ["../" + "shared", "/work" + "/shared", "shared" + "/data/labels_test"]
    offenders = []
    for path in _tracked_files():
        if path.suffix in (".py", ".md", ".cfg", ".toml", ".txt", "") or path.name in ("Makefile", "run"):
            try:
                text = path.read_text()
            except (UnicodeDecodeError, OSError):
                continue
            offenders += [f"{path.relative_to(ROOT)}: {needle}" for needle in needles if needle in text]
    assert not offenders


@pytest.mark.parametrize("package", ["decathlon", "data_prep", "baselines"])
def test_nothing_imports_upward(package):
    violations = []
    for path in sorted((ROOT / package).rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        layer = _layer(module)
        if layer is None:  # decathlon.cli and decathlon/__main__.py: the top, may import anything
            continue
        for imported in _project_imports(path):
            target = _layer(imported)
            if target is not None and target != layer and target not in ALLOWED[layer]:
                violations.append(f"{module} imports {imported}")
    assert not violations


def test_every_source_file_is_readable_in_one_sitting():
    long = [f"{path.relative_to(ROOT)} ({n} lines)" for path in _tracked_files() if path.suffix == ".py"
            and (n := len(path.read_text().splitlines())) > MAX_LINES]
    assert not long
