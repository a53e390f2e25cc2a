"""``python -m learnlab`` (and ``torchrun -m learnlab run ...``): the ``learnlab`` command."""

import sys

from learnlab.cli import main

sys.exit(main())
