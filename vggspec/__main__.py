"""``python -m vggspec`` is the ``vggspec`` command."""

import sys

from vggspec.cli import main

sys.exit(main())
