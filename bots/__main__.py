"""`python -m bots ...`: a bot swarm, the same as `arena bots ...`."""

import sys

from bots.cli import swarm_main

sys.exit(swarm_main(sys.argv[1:]))
