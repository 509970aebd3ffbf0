"""``python -m simdyn ...``: the ``simdyn`` command line (same as the installed script)."""

from simdyn._src.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
