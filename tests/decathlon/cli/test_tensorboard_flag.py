"""--tensorboard: off by default, and from `decathlon train` / `decathlon run` into every JobSpec."""
from decathlon.benchmark import BenchmarkConfig, plan_jobs
from decathlon.cli import build_parser
from decathlon.cli.common import execution_options
from decathlon.cli.run import parse_args


def _checked(argv):
    """The arguments as a command sees them: parsed, then checked (the --config layer applied)."""
    args = build_parser().parse_args(argv)
    args.check(args, args.command_parser)
    return args


def test_train_and_run_take_the_flag_off_by_default():
    train = ["train", "--method", "finetune", "--domain", "dtd", "--out", "job"]
    assert execution_options(_checked(train))["tensorboard"] is False
    assert execution_options(_checked([*train, "--tensorboard"]))["tensorboard"] is True
    assert execution_options(parse_args(["--tensorboard"]))["tensorboard"] is True


def test_run_passes_the_flag_into_every_job(tmp_path):
    config = BenchmarkConfig(out=str(tmp_path), methods=("finetune", "spottune_joint"), domains=("dtd", "svhn"),
                             tensorboard=True)
    jobs = plan_jobs(config, tmp_path / "backbone.pt")
    assert len(jobs) == 3 and all(spec.tensorboard for spec in jobs)
    assert not any(spec.tensorboard for spec in plan_jobs(BenchmarkConfig(out=str(tmp_path)), tmp_path / "b.pt"))
