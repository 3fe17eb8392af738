"""`python -m weightprog …`: the command line, as the `weightprog` script runs it."""

from .cli import run

run()
