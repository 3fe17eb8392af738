"""The command line, one module per command: parse, resolve names once, call the library, print."""

from .main import main


def run() -> None:
    """The `weightprog` script (and `python -m weightprog`): `main`, then an exit that skips the
    interpreter's last garbage collection over everything torch and matplotlib made (the process
    ends: the memory goes back either way), which took ~1 s after the README's main job (issue 26).
    The process keeps freed memory for reuse (`heap.keep_freed_memory`) and runs the fused kernels
    built ahead of time (`aot.use_kernel_cache`)."""
    import gc

    import click

    from ..aot import use_kernel_cache
    from ..heap import keep_freed_memory

    keep_freed_memory()
    use_kernel_cache(report=lambda line: click.echo(f"weightprog: {line}", err=True))
    try:
        main(prog_name="weightprog")
    finally:
        gc.freeze()


__all__ = ["main", "run"]
