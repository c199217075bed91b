"""The book's build tool: run chapters with papermill, render them with Jupyter Book.

Needs the ``book`` extra. ``python -m bea_book --help``.
"""
