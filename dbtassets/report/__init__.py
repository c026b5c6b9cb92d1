"""Renderers (text, JSON, GitHub, Mermaid/DOT) and the watch log."""
