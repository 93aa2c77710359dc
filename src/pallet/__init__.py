"""pallet: Docker images end to end in Python, daemonless."""

__version__ = "0.1.0"
