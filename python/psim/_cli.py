"""The ``psim`` command that ``pip install ./python`` puts on PATH: the CLI itself.

It runs the Rust command line (``psim::cli::main``) inside the extension,
so ``psim --version``, ``psim run ...`` and ``psim report DIR`` behave as
the ``psim`` binary built by ``cargo`` does.
"""

import signal
import sys


def main() -> None:
    # As the binary: Ctrl-C ends the command, a closed pipe (`psim ... | head`) ends it quietly.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    from . import _psim

    sys.exit(_psim.cli_main(["psim", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
