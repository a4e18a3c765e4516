"""A compact count of 128-bit digests, for whole-dataset steps that must recognise what they saw.

A dict of ``bytes`` keys costs about 150 bytes an entry; ten million distinct texts or ids would
hold 1.5 GB. Neither the standard library nor numpy has a compact hash map, so this keeps the
digests in sorted numpy arrays (with a 32-bit number and count beside each, 24 bytes an entry)
and takes them a batch at a time: each batch's new digests become a sorted run, and runs of
similar size are merged (as in a log-structured merge tree), so adding n digests costs
O(n log n) and a lookup searches O(log n) runs. A merge places the newer run's entries by one
search into the older (no run shares a digest with another) and builds the merged columns one
at a time, freeing each input column as it goes: about 50 bytes an entry at its peak, where a
concatenate-and-argsort merge held 100.
"""

from __future__ import annotations

import hashlib

import numpy as np


def digest(text: str) -> bytes:
    """128 bits of BLAKE2b: two different texts share one with a chance of about 10^-26 among a million."""
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


class DigestCounts:
    """Every digest seen so far, each with its number (0, 1, … in first-seen order) and how
    often it was seen."""

    def __init__(self) -> None:
        self._runs: list[list[np.ndarray]] = []  # [digests, numbers, counts] each, sorted by digest
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, digests: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """Count a batch; for each of its digests, the digest's number and how many times it was
        seen before (in earlier batches, then earlier in this one)."""
        batch = np.array(digests, dtype="S16")
        distinct, first, inverse, counts = np.unique(batch, return_index=True, return_inverse=True, return_counts=True)
        numbers = np.full(len(distinct), -1, dtype=np.int64)
        before = np.zeros(len(distinct), dtype=np.int64)
        for run_digests, run_numbers, run_counts in self._runs:
            position = np.minimum(np.searchsorted(run_digests, distinct), len(run_digests) - 1)
            found = (run_digests[position] == distinct) & (numbers < 0)
            numbers[found] = run_numbers[position[found]]
            before[found] = run_counts[position[found]]
            run_counts[position[found]] += counts[found].astype(np.uint32)
        new = np.flatnonzero(numbers < 0)  # in digest order: the new run is sorted
        in_first_seen_order = np.argsort(first[new], kind="stable")
        numbers[new[in_first_seen_order]] = np.arange(self._size, self._size + len(new))
        self._size += len(new)
        if len(new):
            self._runs.append([distinct[new], numbers[new].astype(np.uint32), counts[new].astype(np.uint32)])
        while len(self._runs) > 1 and len(self._runs[-1][0]) * 2 >= len(self._runs[-2][0]):
            newer = self._runs.pop()
            self._runs.append(_merged(self._runs.pop(), newer))
        by_digest = np.argsort(inverse, kind="stable")  # each record's rank among its batch's equals
        ranks = np.empty(len(batch), dtype=np.int64)
        ordered = inverse[by_digest]
        ranks[by_digest] = np.arange(len(batch)) - np.searchsorted(ordered, ordered, side="left")
        return numbers[inverse], before[inverse] + ranks


def _merged(older: list[np.ndarray], newer: list[np.ndarray]) -> list[np.ndarray]:
    """Two sorted runs with no digest in common as one sorted run; the inputs' columns are
    emptied as they are merged, so only one column is ever held twice."""
    at = np.searchsorted(older[0], newer[0])
    at += np.arange(len(at))  # each newer entry lands after the older ones below it
    from_older = np.ones(len(older[0]) + len(at), dtype=bool)
    from_older[at] = False
    merged = []
    for column in range(len(older)):
        out = np.empty(len(from_older), dtype=older[column].dtype)
        out[at] = newer[column]
        out[from_older] = older[column]
        older[column] = newer[column] = out[:0]  # drop the input column now
        merged.append(out)
    return merged
