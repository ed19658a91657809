"""`python -m vocagan ...` (also what `torchrun -m vocagan train ...` runs)."""

from vocagan.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
