"""Hailuo Bridge: the Hailuo AI web chat in Telegram."""

__version__ = "0.1.0"
