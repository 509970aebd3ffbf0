"""Figure and study scripts: one per paper figure or phase diagram (see README.md).

Run from the repository root as ``python -m experiments.<script> [--quick|--tiny] [--out DIR]``.
"""
