"""`python -m server serve ...`, the same as the `arena` command."""

import sys

from server.cli import main

sys.exit(main())
