"""The launcher's arguments, shared by every command that runs many jobs (`run`, and any
command that launches jobs the same way):

    add_launcher_arguments(parser)        the argument group
    check_launcher_arguments(args, parser)   ranges argparse cannot check (a usage error)
    launcher_config(args)                 -> decathlon.launch.LauncherConfig
"""
from __future__ import annotations

from decathlon.launch import LAUNCHERS, LauncherConfig, default_launcher

POSITIVE = ("jobs_per_device", "threads_per_job", "slurm_time", "slurm_cpus", "slurm_array_parallelism")


def add_launcher_arguments(parser) -> None:
    group = parser.add_argument_group("launcher", "where the jobs run (docs/running.md#launchers)")
    group.add_argument("--launcher", choices=LAUNCHERS,
                       help="local: processes on the local host; torchrun: the jobs spread over torchrun's "
                            "processes; slurm: submitit job arrays (default: torchrun under torchrun, else local)")
    group.add_argument("--jobs-per-device", type=int,
                       help="local/torchrun: jobs run at once per device (per torchrun rank), each in its own "
                            "process; default: 4 on a GPU of 40 GiB or more, 2 on a smaller GPU, 1 on a CPU")
    group.add_argument("--threads-per-job", type=int,
                       help="torch CPU threads of each job (default: the process's threads shared out evenly; "
                            "on slurm --slurm-cpus)")
    group.add_argument("--slurm-partition", help="slurm: the partition (default: the cluster's default)")
    group.add_argument("--slurm-time", type=int, default=120,
                       help="slurm: minutes per task; a task that runs out is requeued and resumes "
                            "(default: %(default)s)")
    group.add_argument("--slurm-gpus", type=int, default=0, help="slurm: GPUs per job (default: %(default)s)")
    group.add_argument("--slurm-cpus", type=int, help="slurm: CPUs per job (default: the cluster's, one)")
    group.add_argument("--slurm-mem-gb", type=float, help="slurm: memory per job in GB (default: the cluster's)")
    group.add_argument("--slurm-array-parallelism", type=int, default=256,
                       help="slurm: tasks of one job array running at once (default: %(default)s)")
    group.add_argument("--slurm-folder", help="slurm: submitit's logs and task files (default: <run folder>/submitit)")
    group.add_argument("--slurm-option", action="append", metavar="KEY=VALUE",
                       help="slurm: any other sbatch option, e.g. account=myproject or qos=high; repeatable")


def check_launcher_arguments(args, parser) -> None:
    """Counts must be positive, --slurm-gpus not negative, --slurm-option KEY=VALUE."""
    for name in POSITIVE:
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.slurm_gpus < 0:
        parser.error("--slurm-gpus must be 0 or more")
    if args.slurm_mem_gb is not None and args.slurm_mem_gb <= 0:
        parser.error("--slurm-mem-gb must be more than 0")
    for option in args.slurm_option or ():
        if "=" not in option or not option.split("=", 1)[0].strip():
            parser.error(f"--slurm-option {option}: expected KEY=VALUE (an sbatch option without its dashes)")


def launcher_config(args) -> LauncherConfig:
    """The LauncherConfig the arguments ask for."""
    options = dict(option.split("=", 1) for option in args.slurm_option or ())
    return LauncherConfig(args.launcher or default_launcher(), args.jobs_per_device, args.threads_per_job,
                          partition=args.slurm_partition, time=args.slurm_time, gpus_per_job=args.slurm_gpus,
                          cpus_per_job=args.slurm_cpus, mem_gb=args.slurm_mem_gb,
                          array_parallelism=args.slurm_array_parallelism, folder=args.slurm_folder,
                          sbatch_options={key.strip().replace("-", "_"): value for key, value in options.items()})
