"""``python -m mongomancy.cli``: the ``mongomancy`` command group."""

from mongomancy.cli import main

if __name__ == "__main__":
    main()
