"""Launch (or relaunch) a hyperparameter sweep: seeded trials per method and domain, run as jobs.

Each method searches the ranges of decathlon.benchmark.search_spaces (learning rate, weight
decay, its own knobs); `--trials N` settings are drawn per (method, domain), `random` (seeded
by the sweep seed, method, domain and trial) or the first N of the `grid`, and each runs for
`--seeds K` seeds under protocol train into <out>/jobs/<method>/<domain>/<settings>/seed<k>/.
<out>/sweep.json holds the sweep's settings: relaunching the same command skips finished
jobs and resumes unfinished ones; other settings into the same folder are refused.
`decathlon select --sweep <out>` then chooses per method and domain and runs the choice.
"""
from __future__ import annotations

from decathlon.benchmark import PRESETS, SAMPLERS, SEARCH_SPACES, SweepConfig, run_sweep
from decathlon.checkpoints import TIMM_HUB
from decathlon.cli.common import (add_backbone_arguments, backbone_arch, backbone_file, names_from,
                                  overrides_from, run_guarded)
from decathlon.cli.launcher_args import add_launcher_arguments, check_launcher_arguments, launcher_config
from decathlon.data import TARGET_DOMAINS, get_domain
from decathlon.methods import METHODS, defined_on


def _sweepable(name: str) -> None:
    if name not in SEARCH_SPACES:
        raise KeyError(f"method {name!r} cannot be swept; methods with a search space: {', '.join(SEARCH_SPACES)}")


def add_execution(parser) -> None:
    """How the jobs run (also `decathlon select`): the device, progress and the launcher."""
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_launcher_arguments(parser)


def add_arguments(parser) -> None:
    parser.add_argument("--data", default="data/synthetic", help="prepared shard folder (default: %(default)s)")
    parser.add_argument("--preset", default="cpu_demo", choices=PRESETS, help="the preset every trial starts from")
    parser.add_argument("--methods", required=True, help="comma-separated, or all (those of the backbone): "
                                                                  f"{', '.join(SEARCH_SPACES)}")
    parser.add_argument("--domains", default="all", help="comma-separated target domains, or all nine")
    parser.add_argument("--trials", type=int, default=3, help="settings drawn per (method, domain)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per trial")
    parser.add_argument("--sampler", choices=SAMPLERS, default="random", help="random draws or the grid's first N")
    parser.add_argument("--sweep-seed", type=int, default=0, help="seed of the random draws")
    parser.add_argument("--hparam", action="append", metavar="KEY=VALUE",
                        help="fix a hyperparameter for every trial (a searched key is then not searched)")
    parser.add_argument("--backbone", help="start every job from this backbone instead of pretraining one")
    add_backbone_arguments(parser)
    parser.add_argument("--out", help="sweep folder (default: runs/<preset>-<synthetic|real>-sweep)")
    add_execution(parser)


def check_counts(args, parser, names) -> None:
    for name in names:
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")


def check_arguments(args, parser):
    try:
        arch = backbone_arch(args)
        swept = tuple(name for name in SEARCH_SPACES if defined_on(METHODS[name], arch))
        args.methods = names_from(args.methods, swept, _sweepable)
        args.domains = names_from(args.domains, TARGET_DOMAINS, get_domain)
    except KeyError as err:
        parser.error(err.args[0])
    if "imagenet12" in args.domains:
        parser.error("imagenet12 is the source domain (pretraining); choose targets among the other nine")
    check_counts(args, parser, ("trials", "seeds"))
    check_launcher_arguments(args, parser)
    return args


def run(args) -> int:
    def launch():
        overrides = overrides_from(args)
        backbone = backbone_file(args, overrides)
        if backbone == TIMM_HUB:   # a sweep identifies its backbone by a file's sha256
            raise ValueError(f"--backbone-weights {TIMM_HUB}: a sweep starts from a weight file; save timm's "
                             "pretrained weights as safetensors and pass that file")
        config = SweepConfig(args.data, args.out, args.methods, args.domains, args.preset, args.trials, args.seeds,
                             args.sampler, args.sweep_seed, overrides, backbone, args.device,
                             not args.no_progress, launcher_config(args))
        trials = run_sweep(config)
        print(f"sweep {config.out}: {len(trials)} trial(s) x {config.seeds} seed(s) finished; "
              f"choose with `decathlon select --sweep {config.out}`")
    return run_guarded(launch)
