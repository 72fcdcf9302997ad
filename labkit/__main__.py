"""``python -m labkit`` is the same as the ``labkit`` console script."""

from labkit.cli import run

run()
