"""A hyperparameter sweep as ordinary jobs (DomainBed's `sweep launch`), in one folder:

    <out>/sweep.json                                       what the sweep is (its identity)
    <out>/pretrain/<preset>[-h<hash>]-seed0/               the backbone, as `decathlon run` makes it
    <out>/jobs/<method>/<domain>/<settings>/trial.json     the trial: its index and settings
    <out>/jobs/<method>/<domain>/<settings>/seed<k>/       one job per seed (protocol train)

`<settings>` is the trial's drawn values, e.g. `lr=0.0123_weight_decay=0.00045`
(decathlon.benchmark.search_spaces). The trials are a function of sweep.json alone, so a
relaunch finds its own folders: finished jobs are skipped, unfinished ones resumed from
their last epoch, and no trial runs twice. sweep.json is written once, atomically; a
launch with other settings into the folder is refused, naming the field that differs.
Trials always run under protocol train: val is held out to choose on
(decathlon.benchmark.selection runs the chosen settings under the preset's protocol).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from decathlon.benchmark.plan import BenchmarkConfig, check_data, check_overrides, plan_jobs
from decathlon.benchmark.run import SLURM_FOLDER, backbone_of_run
from decathlon.benchmark.search_spaces import draw_trials, settings_slug
from decathlon.data import MANIFEST_NAME, TARGET_DOMAINS
from decathlon.engine import distributed
from decathlon.files import folder_lock, parse_json, sha256_file, write_json_atomic
from decathlon.jobdir import is_done
from decathlon.launch import LauncherConfig, default_launcher, launch

SWEEP_FILE = "sweep.json"
TRIAL_FILE = "trial.json"
SWEEP_FORMAT = 1
TRIAL_PROTOCOL = "train"   # val held out: what the selection chooses on


@dataclass
class SweepConfig:
    data: str = "data/synthetic"
    out: str | None = None
    methods: tuple = ("finetune",)
    domains: tuple = TARGET_DOMAINS
    preset: str = "cpu_demo"
    trials: int = 3
    seeds: int = 1
    sampler: str = "random"
    sweep_seed: int = 0
    overrides: dict = field(default_factory=dict)   # fixed for every trial (--hparam)
    backbone: str | None = None                     # as `decathlon run --backbone`: no pretraining
    device: str = "auto"
    progress: bool = True
    launcher: LauncherConfig | None = None          # None: local (torchrun under torchrun)

    def benchmark(self, **changes) -> BenchmarkConfig:
        """The run this sweep's jobs belong to (protocol train, the fixed overrides)."""
        config = BenchmarkConfig(self.data, self.out, tuple(self.methods), tuple(self.domains), self.preset,
                                 TRIAL_PROTOCOL, self.seeds, self.device, dict(self.overrides),
                                 progress=self.progress, backbone=self.backbone)
        return replace(config, **changes)


@dataclass(frozen=True)
class Trial:
    """One drawn setting of (method, domain): trial `index` of the sweep, in `folder`."""
    method: str
    domain: str
    index: int
    settings: dict
    folder: Path

    def job(self, seed: int) -> Path:
        return self.folder / f"seed{seed}"


def default_sweep_out(config: SweepConfig, synthetic: bool) -> str:
    return f"runs/{config.preset}-{'synthetic' if synthetic else 'real'}-sweep"


def sweep_identity(config: SweepConfig) -> dict:
    """What sweep.json holds: everything the trials and their results depend on."""
    return {"format": SWEEP_FORMAT, "preset": config.preset, "data": str(Path(config.data).resolve()),
            "manifest_sha256": sha256_file(Path(config.data) / MANIFEST_NAME), "methods": list(config.methods),
            "domains": list(config.domains), "trials": config.trials, "seeds": config.seeds,
            "sampler": config.sampler, "sweep_seed": config.sweep_seed, "overrides": dict(config.overrides),
            "backbone": str(Path(config.backbone).resolve()) if config.backbone else None,
            "backbone_sha256": sha256_file(config.backbone) if config.backbone else None}


def sweep_id(identity: dict) -> str:
    """A short digest of sweep.json's content: every trial job records it."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


def read_sweep_file(folder) -> dict:
    """sweep.json of a sweep folder (ValueError naming the file when missing or damaged)."""
    path = Path(folder) / SWEEP_FILE
    if not path.is_file():
        raise ValueError(f"{path}: not found; {folder} is not a sweep folder (made by `decathlon sweep`)")
    identity = parse_json(path.read_bytes(), path, "a JSON object")
    missing = [key for key in ("format", "preset", "data", "methods", "domains", "trials", "seeds", "sampler",
                               "sweep_seed", "overrides", "backbone") if not isinstance(identity, dict)
               or key not in identity]
    if missing:
        raise ValueError(f"{path}: field(s) {', '.join(missing)} missing; expected the sweep.json that "
                         "`decathlon sweep` writes")
    return identity


def check_same_sweep(folder, identity: dict) -> None:
    """Refuse a sweep folder whose sweep.json holds other settings, naming the first that differs."""
    stored = read_sweep_file(folder)
    for key, value in identity.items():
        if stored.get(key) != value:
            raise ValueError(f"{Path(folder) / SWEEP_FILE}: field {key!r} is {json.dumps(stored.get(key))}, this "
                             f"sweep has {json.dumps(value)}; a sweep folder holds one sweep: use the same "
                             "settings to resume it, or another --out")


def plan_trials(config: SweepConfig) -> list:
    """Every trial of the sweep, per method and domain in order; trials that drew the same
    settings are one trial (the first index), run once."""
    trials = []
    for method in config.methods:
        for domain in config.domains:
            seen = set()
            draws = draw_trials(method, domain, config.trials, config.sampler, config.sweep_seed, config.preset,
                                config.overrides)
            for index, settings in enumerate(draws):
                slug = settings_slug(settings)
                if slug not in seen:
                    seen.add(slug)
                    trials.append(Trial(method, domain, index, settings,
                                        Path(config.out) / "jobs" / method / domain / slug))
    return trials


def trial_specs(trials: list, config: SweepConfig, backbone: Path, identity: dict,
                backbone_sha256: str | None = None) -> list:
    """The jobs of the trials: a run's jobs with the trial's settings over the fixed
    overrides, in the trials' folders, each recording its sweep and trial. `backbone_sha256`:
    that of a --backbone file (`prepare_backbone` checked it), which names the jobs' group."""
    specs, tag = [], sweep_id(identity)
    for trial in trials:
        run = config.benchmark(methods=(trial.method,), domains=(trial.domain,),
                               overrides={**config.overrides, **trial.settings}, backbone_sha256=backbone_sha256)
        for spec in plan_jobs(run, backbone):
            extra = {**spec.extra, "sweep": {"id": tag, "trial": trial.index, "settings": trial.settings}}
            specs.append(replace(spec, out=str(trial.job(spec.seed)), extra=extra))
    return specs


def prepare_backbone(run: BenchmarkConfig, manifest: dict, launcher: LauncherConfig | None) -> Path:
    """The backbone file of `run`'s jobs, as `decathlon run` makes it: pretrained into the run
    folder (once), or the --backbone file, evaluated on imagenet12 for the ImNet column
    (its sha256 is then recorded in `run`). In one process: a sweep spreads jobs, not ranks."""
    return backbone_of_run(run, manifest, distributed.local(run.device), _launcher(launcher, run.out))


def run_specs(specs: list, config, launcher: LauncherConfig | None) -> None:
    """Run the unfinished jobs of `specs`, resuming those with a checkpoint, through
    `launcher`. The one place a sweep and a selection hand their jobs over to be run."""
    launch([spec for spec in specs if not is_done(spec.out)], _launcher(launcher, config.out), "jobs",
           config.progress)


def _launcher(launcher: LauncherConfig | None, out) -> LauncherConfig:
    """`launcher`, or the default one; submitit's files under `out` unless told."""
    launcher = launcher or LauncherConfig(default_launcher())
    return replace(launcher, folder=launcher.folder or str(Path(out) / SLURM_FOLDER))


def run_sweep(config: SweepConfig) -> list:
    """Launch or relaunch the sweep; returns its trials. Everything a user can get wrong
    (names, overrides, the data, sweep.json of another sweep) is refused before any job."""
    run = config.benchmark()
    check_overrides(run)
    manifest = check_data(run)
    config.out = config.out or default_sweep_out(config, manifest["synthetic"])
    trials = plan_trials(config)   # every draw checked before anything is written
    identity = sweep_identity(config)
    with folder_lock(config.out, "sweep folder"):
        if (Path(config.out) / SWEEP_FILE).exists():
            check_same_sweep(config.out, identity)
        else:
            write_json_atomic(Path(config.out) / SWEEP_FILE, identity)
        base = config.benchmark()
        backbone = prepare_backbone(base, manifest, config.launcher)
        specs = trial_specs(trials, config, backbone, identity, base.backbone_sha256)
        for trial in trials:
            if not (trial.folder / TRIAL_FILE).is_file():
                write_json_atomic(trial.folder / TRIAL_FILE, {"sweep": sweep_id(identity), **asdict(trial),
                                                              "folder": trial.folder.name})
        run_specs(specs, config, config.launcher)
    return trials


def config_of_sweep(folder, **execution) -> SweepConfig:
    """The SweepConfig of an existing sweep folder (from its sweep.json), with `execution`
    (device, progress, launcher) for the jobs still to run."""
    identity = read_sweep_file(folder)
    return SweepConfig(identity["data"], str(folder), tuple(identity["methods"]), tuple(identity["domains"]),
                       identity["preset"], identity["trials"], identity["seeds"], identity["sampler"],
                       identity["sweep_seed"], dict(identity["overrides"]), identity["backbone"], **execution)
