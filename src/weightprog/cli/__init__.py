"""The command line, one module per command: parse, resolve names once, call the library, print."""

from .main import main

__all__ = ["main"]
