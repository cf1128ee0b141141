"""A real single-node SLURM cluster for the session (tests/slurm/slurm_cluster.sh), started
on free ports in a temporary folder and stopped at the end; the tests that use it are
skipped, with the reason, where the packages (Debian: slurm-wlm, munge) or root are missing."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent / "slurm_cluster.sh"
PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "sinfo")


def _free_port_pair() -> int:
    """A port p with p and p + 1 free on localhost (slurmctld and slurmd)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise RuntimeError("no two consecutive free ports on localhost")


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """SLURM_CONF of a running single-node cluster (set in os.environ for the session)."""
    missing = [program for program in PROGRAMS if shutil.which(program) is None]
    if missing:
        pytest.skip(f"no real SLURM test: {', '.join(missing)} not installed "
                    f"(Debian: apt-get install slurm-wlm munge)")
    if os.geteuid() != 0:
        pytest.skip(f"no real SLURM test: its daemons run as root here, and this is uid {os.geteuid()}")
    folder = tmp_path_factory.mktemp("slurm")
    env = dict(os.environ, SLURM_TEST_PORT=str(_free_port_pair()))
    started = subprocess.run(["bash", str(SCRIPT), "start", str(folder)], env=env, capture_output=True, text=True,
                             timeout=120)
    if started.returncode != 0:
        pytest.fail(f"the single-node SLURM did not start: {started.stderr.strip()}")
    before = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(folder / "slurm.conf")
    yield folder / "slurm.conf"
    subprocess.run(["bash", str(SCRIPT), "stop", str(folder)], capture_output=True, timeout=120)
    if before is None:
        os.environ.pop("SLURM_CONF")
    else:
        os.environ["SLURM_CONF"] = before
