"""The version of tritonnn, in one place (the package, saved files and the build read it from here)."""

__version__ = "0.1.0"
