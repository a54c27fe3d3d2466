"""``python -m cse``: the ``cse`` command line, for environments whose scripts folder is not on PATH."""

from .cli import main

if __name__ == "__main__":
    main()
