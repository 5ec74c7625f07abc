"""NeuroStation: Galaxy tools for big brain and bio image data."""

__version__ = "0.1.0"
