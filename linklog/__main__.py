"""``python -m linklog``: the same as the ``linklog`` command."""

from linklog.cli import main

main()
