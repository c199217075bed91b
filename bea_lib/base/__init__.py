"""The bottom floor: vocabularies, atomic file writes and provenance (no torch, no other layer)."""
