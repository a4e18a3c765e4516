"""``corpusmill ARGS`` with the test-only slow step registered (run as a subprocess)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import slow_step  # noqa: F401  (registers the step)

from corpusmill.cli import app

if __name__ == "__main__":
    app(sys.argv[1:], prog_name="corpusmill")
