"""stabfrag: the stability/fragility joint space."""

from __future__ import annotations

__version__ = "0.1.0"
