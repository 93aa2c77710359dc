"""pallet: Docker images end to end in Python, daemonless."""

from pallet import _dataclass_code

__version__ = "0.1.0"

# before any of pallet's dataclasses is defined: their generated methods come from a cache
_dataclass_code.install()
