"""``python tests/learnlab_without_figures.py ARGS...``: ``learnlab ARGS...`` with its runs'
figures skipped: the ``no_figures`` fixture for a test's subprocesses (the CLI itself, or each
rank under torchrun). For tests that check a run's rows, claims or statuses and never its
figures; drawing them costs a hidden-progress smoke run about 3.5 s of CPU, twice what it trains."""

import sys

from learnlab import runner

runner.draw_figures = lambda *args, **kwargs: {}

from learnlab.cli import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
