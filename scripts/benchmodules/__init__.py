"""Module packages for ``scripts/bench.py --bus``, loaded with ``modules.paths = ["scripts/benchmodules"]``."""
