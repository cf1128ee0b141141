"""`python -m decathlon <command>`: the same as the `decathlon` console command."""
import sys

from decathlon.cli import main

sys.exit(main())
