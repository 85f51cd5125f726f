"""``python -m memif_ct`` runs the memif-ct command."""

import sys

from .cli import main

sys.exit(main())
