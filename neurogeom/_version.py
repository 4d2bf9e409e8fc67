"""The one place the neurogeom version is defined (read by pyproject.toml and the CLI)."""

__version__ = "0.1.0"
