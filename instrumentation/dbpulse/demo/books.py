"""The demo's catalogue: a fixed set of valid ISBN-13s and a skewed pick among them.

A few books are far more popular than the rest (a Pareto pick), so the "top ISBNs" panel has a
ranking, the sphere a few hot orbs and the Redis cache a hit ratio that is neither 0 nor 1::

    catalogue = Catalogue(size=5000, seed=7)
    isbn = catalogue.pick()          # "9780010000125", popular ones more often
"""

from __future__ import annotations

import random

from dbpulse.core.isbn import complete_isbn13

__all__ = ["Catalogue"]


class Catalogue:
    """``size`` distinct ISBN-13s (978 prefix, check digit valid) and a skewed chooser."""

    def __init__(self, size: int = 5000, seed: int | None = 7, popular_share: float = 0.6) -> None:
        if size < 1:
            raise ValueError(f"a catalogue needs at least one book, got size={size}")
        self.isbns = [
            complete_isbn13(f"978{(1_000_003 * i + 12_345) % 10**9:09d}") for i in range(size)
        ]
        self.rng = random.Random(seed)
        self.popular_share = popular_share

    def pick(self) -> str:
        """An ISBN: with ``popular_share`` probability a Pareto-ranked popular one, else any."""
        size = len(self.isbns)
        if self.rng.random() < self.popular_share:
            rank = min(int((self.rng.paretovariate(1.2) - 1) * 25), size - 1)
            return self.isbns[(rank * 7919) % size]
        return self.rng.choice(self.isbns)

    def title(self, isbn: str) -> str:
        return f"Book {isbn[-5:]}"

    def price(self) -> float:
        return round(self.rng.uniform(3, 60), 2)
