"""The split report: counts, per-class proportions, divergence from the whole, and leakage."""

from __future__ import annotations

import hashlib
import math
import mmap
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import IO, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from corpusmill.minhash import MinHasher, ShingleSettings, band_key, band_pairs, cluster_roots, normalise, optimal_bands
from corpusmill.reports import markdown_table

SIGNATURE_BATCH = 10_000
"""Texts hashed per numpy pass in the leakage check."""


class LeakageSettings(BaseModel):
    """Exact and near-duplicate checks between train and the other splits."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    check: bool = True
    threshold: float = Field(default=0.8, gt=0, lt=1)
    shingle: Literal["words", "chars"] = "chars"
    shingle_size: int = Field(default=5, ge=1)
    fail_on_leakage: bool = False


def js_divergence(p: dict[str, float], q: dict[str, float]) -> float:
    """Jensen–Shannon divergence (base 2, 0 = same distribution, 1 = disjoint)."""
    keys = set(p) | set(q)
    m = {k: (p.get(k, 0) + q.get(k, 0)) / 2 for k in keys}

    def kl(a: dict[str, float]) -> float:
        return sum(a[k] * math.log2(a[k] / m[k]) for k in keys if a.get(k, 0) > 0)

    return round((kl(p) + kl(q)) / 2, 6)


def _distribution(counts: Counter[str]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: v / total for k, v in counts.items()} if total else {}


def leakage(
    splits: np.ndarray, names: list[str], texts: Iterable[tuple[str, str]], settings: LeakageSettings
) -> dict[str, Any]:
    """Validation/test records whose text (exactly, or nearly) is also in train.

    ``splits`` holds each record's split index (into ``names``); ``texts`` streams the records'
    ``(id, text)`` in that order, once. Memory keeps, per record, a 64-bit digest of the text, an
    8-byte offset of its id in a temporary file, and one LSH band's key at a time; the MinHash
    signatures (512 bytes a record) go to another temporary file, read through
    :class:`SpilledSignatures`. Neither texts nor ids are held."""
    result: dict[str, Any] = {"checked": settings.check, "exact": 0, "near": 0, "total": 0, "pairs": []}
    count = len(splits)
    if not settings.check or not count:
        return result
    hasher = MinHasher(ShingleSettings(settings.shingle, settings.shingle_size))
    digests = np.empty(count, dtype=np.uint64)  # 8 bytes a record: a 64-bit hash of the normalised text
    id_ends = np.empty(count, dtype=np.int64)  # where each record's id ends in the id file
    done = written = 0
    with tempfile.TemporaryFile() as spilled, tempfile.TemporaryFile() as id_file:
        for batch in _batches(texts):
            if done + len(batch) > count:
                raise ValueError(f"more texts than the {count} records")
            ids = [record_id.encode() for record_id, _ in batch]
            bodies = [body for _, body in batch]
            digests[done : done + len(batch)] = [_text_digest(body) for body in bodies]
            spilled.write(hasher.signatures(bodies).tobytes())
            id_file.write(b"".join(ids))
            id_ends[done : done + len(batch)] = written + np.cumsum([len(i) for i in ids])
            written = int(id_ends[done + len(batch) - 1])
            done += len(batch)
        if done != count:
            raise ValueError(f"{done} texts for {count} records")
        spilled.flush()
        in_train = splits == names.index("train")
        train_index, others = np.flatnonzero(in_train), np.flatnonzero(~in_train)
        exact, exact_train = _exact_leaks(digests, train_index, others)
        del digests
        with SpilledSignatures(spilled, count, hasher.num_perm) as signatures:
            roots = cluster_roots(
                _band_pairs(signatures, settings.threshold), count, settings.threshold, signatures.row
            )
        near, near_train = _near_leaks(roots, train_index, others, exact)
        del roots
        index = np.concatenate([exact, near])
        train = np.concatenate([exact_train, near_train])
        order = np.argsort(index, kind="stable")
        index, train = index[order], train[order]
        listed_index, listed_train = index[:LEAKAGE_PAIRS_LISTED].tolist(), train[:LEAKAGE_PAIRS_LISTED].tolist()
        record_id = _ids_at(id_file, id_ends, sorted(set(listed_index) | set(listed_train)))
    exact_set = set(exact.tolist())
    pairs = []
    for i, t in zip(listed_index, listed_train, strict=True):
        pair = {"kind": "exact" if i in exact_set else "near", "train_id": record_id[t], "id": record_id[i]}
        pair["split"] = names[int(splits[i])]
        if i in exact_set:
            pair["similarity"] = 1.0
        pairs.append(pair)
    by_split = np.bincount(splits[index], minlength=len(names)).tolist()
    result["exact"] = len(exact_set)
    result["near"] = len(index) - len(exact_set)
    result["total"] = len(index)
    result["by_split"] = {name: n for name, n in sorted(zip(names, by_split, strict=True)) if n}
    result["pairs"] = pairs
    return result


LEAKAGE_PAIRS_LISTED = 1000
"""Leaked records the report names (the first, in record order); the counts cover every one. A
corpus full of near-duplicates can leak hundreds of thousands, which a manifest should not hold."""


def _exact_leaks(digests: np.ndarray, train_index: np.ndarray, others: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The non-train records whose text digest a train record has, and that train record (the
    first with it)."""
    train_digests, first = np.unique(digests[train_index], return_index=True)
    if not len(train_digests):
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    position = np.minimum(np.searchsorted(train_digests, digests[others]), len(train_digests) - 1)
    exact = train_digests[position] == digests[others]
    return others[exact], train_index[first[position[exact]]]


def _near_leaks(
    roots: np.ndarray, train_index: np.ndarray, others: np.ndarray, exact: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The non-train records (not already exact leaks) in a near-duplicate cluster with a train
    record, and the cluster's first train record."""
    train_roots, first = np.unique(roots[train_index], return_index=True)
    if not len(train_roots):
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    position = np.minimum(np.searchsorted(train_roots, roots[others]), len(train_roots) - 1)
    near = (train_roots[position] == roots[others]) & ~np.isin(others, exact)
    return others[near], train_index[first[position[near]]]


def _ids_at(id_file: IO[bytes], id_ends: np.ndarray, wanted: list[int]) -> dict[int, str]:
    """The ids of records ``wanted`` (sorted), read back from the id file."""
    out = {}
    for index in wanted:
        start = int(id_ends[index - 1]) if index else 0
        id_file.seek(start)
        out[index] = id_file.read(int(id_ends[index]) - start).decode()
    return out


SIGNATURE_READS_HELD = 256
"""Signature reads between two hand-backs of the memory map's pages: each read maps up to 64 KB
around it (the kernel's fault-around), so at most 16 MB stay resident (4,096 reads let a
million-record check hold 200 MB)."""


class SpilledSignatures:
    """MinHash signatures in a temporary file, read through a memory map whose pages are handed
    back to the OS (``MADV_DONTNEED``) every :data:`SIGNATURE_READS_HELD` reads and after each
    sequential pass. The data stays in the page cache, so a re-read costs no disk, while the
    process's resident memory stays bounded — a million candidate signatures would be 512 MB.
    Written here because numpy's ``memmap`` keeps every page it touched resident."""

    def __init__(self, spilled: IO[bytes], count: int, num_perm: int) -> None:
        self._map = mmap.mmap(spilled.fileno(), 0, access=mmap.ACCESS_READ)
        self._rows = np.frombuffer(self._map, dtype=np.uint32).reshape(count, num_perm)
        self._reads = 0

    def __enter__(self) -> SpilledSignatures:
        return self

    def __exit__(self, *exc: object) -> None:
        del self._rows
        self._map.close()

    def row(self, index: int) -> np.ndarray:
        self._reads += 1
        if self._reads % SIGNATURE_READS_HELD == 0:
            self.release()
        return self._rows[index]

    def __len__(self) -> int:
        return len(self._rows)

    def release(self) -> None:
        """Hand the map's resident pages back (a later read faults them in from the page cache)."""
        self._map.madvise(mmap.MADV_DONTNEED)

    def blocks(self) -> Iterator[np.ndarray]:
        """The signatures in row order, a batch at a time."""
        for start in range(0, len(self._rows), SIGNATURE_BATCH):
            yield self._rows[start : start + SIGNATURE_BATCH]
            self.release()

    @property
    def num_perm(self) -> int:
        return self._rows.shape[1]


def _band_pairs(signatures: SpilledSignatures, threshold: float) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Each LSH band's candidate pairs in turn (:func:`band_pairs`): one band's keys in memory at a time."""
    bands, rows = optimal_bands(threshold, signatures.num_perm)
    keys = np.empty(len(signatures), dtype=np.uint64)  # filled block by block: no list of pieces to concatenate
    for band in range(bands):
        done = 0
        for block in signatures.blocks():
            keys[done : done + len(block)] = band_key(block, band, rows)
            done += len(block)
        yield band_pairs(keys)


def _batches(bodies: Iterable[tuple[str, str]]) -> Iterator[list[tuple[str, str]]]:
    stream = iter(bodies)
    while batch := list(islice(stream, SIGNATURE_BATCH)):
        yield batch


def _text_digest(body: str) -> int:
    """A 64-bit hash of the normalised text: at a million records, the chance that two different
    texts share one is about 3 in 100 million, and it costs 8 bytes a record in a numpy array
    (a SHA-256 ``bytes`` in a dict cost ~150)."""
    return int.from_bytes(hashlib.blake2b(normalise(body, True, True).encode(), digest_size=8).digest(), "little")


def split_report(
    labels: Sequence[str | tuple[str, ...]],
    record_labels: np.ndarray,
    splits: np.ndarray,
    texts: Iterable[tuple[str, str]],
    names: list[str],
    ratios: dict[str, float],
    rare: dict[str, int],
    rare_policy: str,
    settings: LeakageSettings,
    moved_from_previous: int = 0,
    kept_from_previous: int = 0,
) -> dict[str, Any]:
    """The report of the kept records: ``record_labels`` indexes ``labels`` (-1: none), ``splits``
    indexes ``names``, and ``texts`` streams their ``(id, text)`` for the leakage check."""
    width = len(names)
    labelled = record_labels >= 0
    counts = np.bincount(
        record_labels[labelled].astype(np.int64) * width + splits[labelled], minlength=len(labels) * width
    ).reshape(len(labels), width)
    per_class: dict[str, Counter[str]] = defaultdict(Counter)
    whole: Counter[str] = Counter()
    for label, row in zip(labels, counts.tolist(), strict=True):
        for part in [label] if isinstance(label, str) else label:
            for s, n in zip(names, row, strict=True):
                if n:
                    per_class[part][s] += n
                    whole[part] += n
    split_totals = np.bincount(splits, minlength=width).tolist()
    largest: dict[str, Any] = {"label": None, "split": None, "records": 0.0}
    classes = {}
    for label in sorted(per_class, key=lambda lb: (-whole[lb], lb)):
        in_class = per_class[label]
        n = sum(in_class.values())
        classes[label] = {"total": whole[label], **{s: in_class.get(s, 0) for s in names}}
        if label in rare:
            continue
        for s in names:
            deviation = in_class.get(s, 0) - n * ratios[s]
            if abs(deviation) > abs(largest["records"]):
                largest = {"label": label, "split": s, "records": round(deviation, 3)}
    overall = _distribution(whole)
    divergence = {}
    for s in names:
        in_split: Counter[str] = Counter({label: per_class[label].get(s, 0) for label in per_class})
        divergence[s] = js_divergence(_distribution(+in_split), overall) if whole else 0.0
    return {
        "splits": dict(zip(names, split_totals, strict=True)),
        "ratios": ratios,
        "classes": classes,
        "largest_deviation": largest,
        "js_divergence": divergence,
        "rare_classes": dict(sorted(rare.items())),
        "rare_policy": rare_policy,
        "previous": {"kept": kept_from_previous, "moved": moved_from_previous},
        "leakage": leakage(splits, names, texts, settings),
    }


def render_split_report(report: dict[str, Any]) -> str:
    """The split report as a release-card section (markdown)."""
    names = list(report["splits"])
    parts = ["## Split report", ""]
    deviation = report["largest_deviation"]
    if deviation["label"] is not None:
        parts += [
            f"Largest deviation of a class from its target: {deviation['records']:+} records "
            f"(`{deviation['label']}` in {deviation['split']}). Jensen–Shannon divergence of each split's "
            "label distribution from the whole (0 = identical):",
            "",
            markdown_table(
                ["split", "records", "JS divergence"],
                [[s, report["splits"][s], report["js_divergence"][s]] for s in names],
            ),
            "",
        ]
    if report["rare_classes"]:
        parts += [
            f"Classes too small for every split (policy `{report['rare_policy']}`):",
            "",
            markdown_table(["label", "records"], sorted(report["rare_classes"].items())),
            "",
        ]
    previous = report["previous"]
    if previous["kept"]:
        parts += [f"{previous['kept']} records came from the previous release; {previous['moved']} changed split.", ""]
    leak = report["leakage"]
    if leak["checked"]:
        parts += [
            f"Leakage check: {leak['exact']} validation/test records are exact duplicates of train records "
            f"(after normalisation) and {leak['near']} are near-duplicates (MinHash).",
            "",
        ]
        if leak["pairs"]:
            parts += [
                markdown_table(
                    ["kind", "split", "record", "train record"],
                    [[p["kind"], p["split"], p["id"], p["train_id"]] for p in leak["pairs"][:20]],
                ),
                "",
            ]
    return "\n".join(parts)
