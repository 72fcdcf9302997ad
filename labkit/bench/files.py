"""Whole-or-nothing text files: the benchmark outputs never appear half written.

The writes themselves are :mod:`labkit.io.atomic`'s, the one place the lab replaces files.
"""

from labkit.io.atomic import default_mode, write_text_atomic

__all__ = ["default_mode", "write_text_atomic"]
