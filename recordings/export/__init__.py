"""Exports of recordings, one module per format: JSON Lines, asciicast v2, CSV and evidence bundles."""

from __future__ import annotations

FORMATS = ("jsonl", "asciicast", "csv", "evidence")
