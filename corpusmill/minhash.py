"""MinHash signatures and LSH clustering, shared by near-dedup (cleaning) and the splitter's
leakage check.

Signatures are computed with numpy over all shingles at once (``np.minimum.reduceat``) rather
than with datasketch's per-document objects: the same estimator (universal hashing of 32-bit
shingle hashes modulo a prime), measured faster in bench/clean.py.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

NON_WORD = re.compile(r"[\W_]+")
PRIME = np.uint64(4294967291)  # the largest prime below 2**32: 2**32 - 5
LOW_32_BITS = np.uint64(0xFFFFFFFF)
CHUNK = 4096
"""Shingles permuted per numpy pass: 4 MB blocks at 128 permutations stay in cache (1.6x faster
than 32,768 on Banking77 questions, 1.8x on documents, and an eighth of the memory)."""


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


Candidates = list[tuple[np.ndarray, np.ndarray]]
"""Per LSH band, the rows that share an earlier row's band key, and those earlier rows."""

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)


def band_keys(signatures: np.ndarray, threshold: float) -> np.ndarray:
    """Each LSH band of each signature as one 64-bit key (FNV-1a over the band's values), bands
    and rows from :func:`optimal_bands`: 8 bytes a band where the band's rows take 4 each, so a
    corpus's keys fit where its signatures would not. A key collision only proposes a candidate,
    which is then checked on the signatures."""
    bands, rows = optimal_bands(threshold, signatures.shape[1])
    keys = np.empty((len(signatures), bands), dtype=np.uint64)
    for band in range(bands):
        keys[:, band] = band_key(signatures, band, rows)
    return keys


def band_key(signatures: np.ndarray, band: int, rows: int) -> np.ndarray:
    """One band's key of each signature (see :func:`band_keys`)."""
    key = np.full(len(signatures), FNV_OFFSET, dtype=np.uint64)
    for column in range(band * rows, (band + 1) * rows):
        key ^= signatures[:, column]
        key *= FNV_PRIME  # wraps modulo 2**64, as FNV wants
    return key


def band_candidates(keys: np.ndarray) -> Candidates:
    """For each band, :func:`band_pairs` of its column of keys."""
    return [band_pairs(keys[:, band]) for band in range(keys.shape[1])]


def band_pairs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(index, first)``: every row whose band key an earlier row had, with the earliest row
    that had it, in row order. Found by sorting the keys (no dict of one entry per row): first a
    sorted copy finds the keys that repeat, then only the rows holding one are argsorted, so a
    band of mostly distinct keys costs about 17 bytes a row at its peak instead of 50."""
    ordered = np.sort(keys)
    repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    del ordered
    if not len(repeated):
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    holds_repeat = np.zeros(len(keys), dtype=bool)
    for start in range(0, len(keys), REPEAT_CHECK_ROWS):
        block = keys[start : start + REPEAT_CHECK_ROWS]
        at = np.minimum(np.searchsorted(repeated, block), len(repeated) - 1)
        holds_repeat[start : start + len(block)] = repeated[at] == block
    rows = np.flatnonzero(holds_repeat)
    del holds_repeat
    sub = keys[rows]
    count = len(sub)
    order = np.argsort(sub, kind="stable")
    sub = sub[order]
    starts = np.ones(count, dtype=bool)
    starts[1:] = sub[1:] != sub[:-1]
    first = order[np.maximum.accumulate(np.where(starts, np.arange(count), 0))]
    index, first = order[~starts], first[~starts]
    by_row = np.argsort(index, kind="stable")
    return rows[index[by_row]], rows[first[by_row]]


REPEAT_CHECK_ROWS = 65_536
"""Rows whose keys are looked up among the repeated ones at a time (the positions take 8 bytes a row)."""


PAIRS_PER_PASS = 65_536
"""Candidate pairs turned into Python ints at once (36 bytes each, where the arrays take 8)."""


def cluster_roots(
    candidates: Iterable[tuple[np.ndarray, np.ndarray]],
    count: int,
    threshold: float,
    signature: Callable[[int], np.ndarray],
) -> np.ndarray:
    """Each row's cluster root (its cluster's first member): band by band, in row order, a row
    joins the cluster of the earlier row sharing its band when its estimated Jaccard similarity
    to that cluster's root reaches ``threshold``. ``signature(i)`` gives row ``i``'s signature;
    it is asked only for candidates. Parents are 32-bit below 2**31 rows (half the memory)."""
    parent = np.arange(count, dtype=np.int32 if count < 2**31 else np.int64)

    def find(i: int) -> int:
        root = i
        while parent[root] != root:
            root = int(parent[root])
        while parent[i] != root:  # path compression
            parent[i], i = root, int(parent[i])
        return root

    for index, first in candidates:
        for start in range(0, len(index), PAIRS_PER_PASS):  # as Python ints a slice at a time
            end = start + PAIRS_PER_PASS
            for i, other in zip(index[start:end].tolist(), first[start:end].tolist(), strict=True):
                root_a, root_b = find(other), find(i)
                if root_a != root_b and float(np.mean(signature(root_a) == signature(i))) >= threshold:
                    parent[max(root_a, root_b)] = min(root_a, root_b)
    while True:  # every row straight to its root
        jumped = parent[parent]
        if np.array_equal(jumped, parent):
            return parent
        parent = jumped


def near_duplicate_clusters(signatures: np.ndarray, threshold: float) -> tuple[list[int], list[float]]:
    """For each signature row, the index of its cluster's first member and its estimated similarity to it.

    LSH bands propose candidates; a candidate joins a cluster only when its estimated Jaccard
    similarity to the cluster's first member reaches ``threshold``.
    """
    count = len(signatures)
    if count == 0:
        return [], []
    roots = cluster_roots(band_candidates(band_keys(signatures, threshold)), count, threshold, signatures.__getitem__)
    similarity = np.ones(count)
    joined = np.flatnonzero(roots != np.arange(count))
    similarity[joined] = (signatures[roots[joined]] == signatures[joined]).mean(axis=1)
    return roots.tolist(), similarity.tolist()
