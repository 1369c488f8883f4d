"""dpp-batches: production batches for Digital Product Passports, SQL-first."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dpp-batches")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
