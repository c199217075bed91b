"""The evidence layer: the paper's statements, checked claims, Findings, run tables, statistics."""
