"""petal's version: one home, written into every model card and run config."""

__version__ = "0.3.0"
