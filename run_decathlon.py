"""The whole Visual Domain Decathlon end to end: `python run_decathlon.py` is `decathlon run`
(decathlon/cli/run.py), kept at the root where the benchmark's users look for it."""
import sys

from decathlon.cli.run import main

if __name__ == "__main__":
    sys.exit(main(prog="run_decathlon.py"))
