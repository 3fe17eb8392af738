"""Training of the reference workloads, floating point (FP) and hardware-aware (HWA), from the shell.

    python -m weightprog.workloads.train fmnist-resnet32 --variant fp    # 8 epochs, ~20 min on 2 cores
    python -m weightprog.workloads.train fmnist-resnet32 --variant hwa   # 2 epochs from the FP checkpoint

The same run as `weightprog train …`: this module runs that one command (`cli/train.py`, its options
and their defaults are `TrainSettings`'), under the name the checkpoint manifest records, so its
commands rerun as written. The defaults are the committed checkpoints' budgets (their exact commands
are in the manifest). Nothing imports this module.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .training import MODULE_COMMAND


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the arguments, train, print the manifest entry (`weightprog train`).

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (default: this process's); bad ones end in one line naming the option and
        exit code 2.
    """
    from ..cli.options import run_alone
    from ..cli.train import train

    run_alone(train, list(sys.argv[1:] if argv is None else argv), MODULE_COMMAND)


if __name__ == "__main__":
    main()
