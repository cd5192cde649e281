"""Shared code for the AlexNet cats-vs-dogs notebook series.

Each module is small and named after what it does; the notebooks import from here instead of
copying code between themselves.
"""
