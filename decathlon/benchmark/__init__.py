"""The benchmark as a plan of jobs, and the hyperparameter registry with its presets."""
