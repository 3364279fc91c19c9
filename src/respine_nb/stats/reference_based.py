"""Reference-based multiple imputation (Carpenter, Roger and Kenward 2013)."""

from __future__ import annotations

__all__: list[str] = []
