"""petal: a transfer-learning image classifier."""

__version__ = "0.1.0"
