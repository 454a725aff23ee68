"""accord: make several language models work together (placeholder; the public API is being built)."""
