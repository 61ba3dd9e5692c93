"""``python -m statusflow.cli``: the ``statusflow`` command."""

from statusflow.cli import main

raise SystemExit(main())
