"""Edge emotion-analytics daemon."""

__version__ = "0.1.0"
