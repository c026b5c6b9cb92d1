"""How messages say a count: ``1 asset``, ``3 assets``; never ``asset(s)``. Anyone may import it."""

from __future__ import annotations


def plural(count: int, word: str, many: str = "") -> str:
    """``1 asset``, ``2 assets``, ``0 assets``; ``many`` when adding an ``s`` is wrong (``1 is``, ``2 are``)."""
    return f"{count} {word if count == 1 else many or word + 's'}"


def noun(count: int, word: str, many: str = "") -> str:
    """The word alone, agreeing with ``count``: ``model``/``models``, ``its``/``their``."""
    return word if count == 1 else many or word + "s"
