"""Training and evaluation of jobs: the loop, checkpoints, resume, torchrun/DDP."""
