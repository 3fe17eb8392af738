"""Test-wide settings: no torch.compile in short runs (tests that check the fused path ask for
it explicitly with compile=True)."""

import os

os.environ.setdefault("WEIGHTPROG_COMPILE", "0")
