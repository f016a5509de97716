"""Build-time helpers that regenerate ``profiles/data`` from the official R4 definitions."""
