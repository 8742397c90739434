"""``python -m portability.cli``: the same as the ``portability`` command."""

from portability.cli import main

if __name__ == "__main__":
    main()
