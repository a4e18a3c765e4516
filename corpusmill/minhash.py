"""MinHash signatures and LSH clustering, shared by near-dedup (cleaning) and the splitter's
leakage check.

Signatures are computed with numpy over all shingles at once (``np.minimum.reduceat``) rather
than with datasketch's per-document objects: the same estimator (universal hashing of 32-bit
shingle hashes modulo a prime), measured faster in bench/clean.py.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

NON_WORD = re.compile(r"[\W_]+")
PRIME = np.uint64(4294967291)  # the largest prime below 2**32: 2**32 - 5
LOW_32_BITS = np.uint64(0xFFFFFFFF)
CHUNK = 32_768
"""Shingles permuted per numpy pass: 16 MB blocks at 128 permutations stay in cache."""


def normalise(text: str, ignore_case: bool, ignore_punctuation: bool) -> str:
    if ignore_case:
        text = text.casefold()
    if ignore_punctuation:
        text = NON_WORD.sub(" ", text)
    return " ".join(text.split())


def optimal_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """LSH bands × rows minimising false positives + false negatives around ``threshold``."""
    grid = np.linspace(0, 1, 1001)
    best, best_error = (1, num_perm), float("inf")
    for bands in range(1, num_perm + 1):
        rows = num_perm // bands
        probability = 1 - (1 - grid**rows) ** bands
        below, above = grid <= threshold, grid >= threshold
        error = np.trapezoid(probability[below], grid[below]) + np.trapezoid(1 - probability[above], grid[above])
        if error < best_error:
            best, best_error = (bands, rows), float(error)
    return best


@dataclass(frozen=True)
class ShingleSettings:
    kind: str = "words"
    """``words`` (n-grams of words, for documents) or ``chars`` (for short texts)."""
    size: int = 5
    ignore_case: bool = True
    ignore_punctuation: bool = True


class MinHasher:
    """MinHash signatures of many texts at once: one numpy pass per chunk of shingles."""

    def __init__(self, settings: ShingleSettings, num_perm: int = 128, seed: int = 1) -> None:
        self.settings = settings
        self.num_perm = num_perm
        rng = np.random.default_rng(seed)
        self.a = rng.integers(1, int(PRIME), size=num_perm, dtype=np.uint64)
        self.b = rng.integers(0, int(PRIME), size=num_perm, dtype=np.uint64)

    def shingles(self, text: str) -> set[int]:
        p = self.settings
        text = normalise(text, p.ignore_case, p.ignore_punctuation)
        units: Sequence[str] = text.split() if p.kind == "words" else text
        joiner = " " if p.kind == "words" else ""
        n = min(p.size, max(1, len(units)))
        return {zlib.crc32(joiner.join(units[i : i + n]).encode()) for i in range(max(1, len(units) - n + 1))}

    def signatures(self, texts: Sequence[str]) -> np.ndarray:
        """One row of ``num_perm`` minima per text, as uint32 (every value is below ``PRIME``)."""
        out = np.empty((len(texts), self.num_perm), dtype=np.uint32)
        hashes: list[int] = []
        starts: list[int] = []
        first_doc = 0
        for index, text in enumerate(texts):
            starts.append(len(hashes))
            hashes.extend(self.shingles(text))
            if len(hashes) >= CHUNK or index == len(texts) - 1:
                permuted = self._permute(np.fromiter(hashes, dtype=np.uint64, count=len(hashes)))
                out[first_doc : index + 1] = np.minimum.reduceat(permuted, np.asarray(starts), axis=1).T
                hashes, starts, first_doc = [], [], index + 1
        return out

    def _permute(self, values: np.ndarray) -> np.ndarray:
        """``(a·x + b) mod PRIME`` for every permutation (rows) and shingle (columns), without dividing.

        ``PRIME = 2**32 − 5``, so ``2**32 ≡ 5``: folding the high half in twice brings any 64-bit
        value below ``2**32 + 25``, and one conditional subtraction finishes. Six times faster than
        numpy's uint64 ``%``, with the same values.
        """
        x = self.a[:, None] * values[None, :]
        x += self.b[:, None]
        high = np.empty_like(x)
        for _ in range(2):
            np.right_shift(x, np.uint64(32), out=high)
            high *= np.uint64(5)
            x &= LOW_32_BITS
            x += high
        x[x >= PRIME] -= PRIME
        return x


def near_duplicate_clusters(signatures: np.ndarray, threshold: float) -> tuple[list[int], list[float]]:
    """For each signature row, the index of its cluster's first member and its estimated similarity to it.

    LSH bands propose candidates; a candidate joins a cluster only when its estimated Jaccard
    similarity to the cluster's first member reaches ``threshold``.
    """
    count, num_perm = signatures.shape
    if count == 0:
        return [], []
    bands, rows = optimal_bands(threshold, num_perm)
    parent = list(range(count))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for band in range(bands):
        block = np.ascontiguousarray(signatures[:, band * rows : (band + 1) * rows])
        first: dict[bytes, int] = {}
        for index in range(count):
            other = first.setdefault(block[index].tobytes(), index)
            if other == index:
                continue
            root_a, root_b = find(other), find(index)
            if root_a != root_b and float(np.mean(signatures[root_a] == signatures[index])) >= threshold:
                parent[max(root_a, root_b)] = min(root_a, root_b)
    roots = [find(i) for i in range(count)]
    similarity = [float(np.mean(signatures[r] == signatures[i])) for i, r in enumerate(roots)]
    return roots, similarity
