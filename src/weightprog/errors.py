"""The one exception type weightprog raises for bad input."""


class WeightprogError(ValueError):
    """Bad input: says what was wrong and what is allowed.

    A ValueError, so library users can catch either; the CLI turns it into a one-line message.
    """
