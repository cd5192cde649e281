"""Shared code for the AlexNet cats-vs-dogs notebooks: small modules they import, not copy."""
