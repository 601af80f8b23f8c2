"""The single place the package version lives (read by setup.cfg and mongomancy.__version__)."""

__version__ = "0.3.0"
