"""A shortlist for local-feature recognition: visual words, tf-idf and an inverted file.

Matching a query against every gallery photo with RANSAC costs time linear in the gallery.
`ShortlistIndex` ranks the gallery first by visual words (Sivic & Zisserman, "Video Google",
2003; Philbin et al. 2007) and only the top ``N`` photos are verified:

- vocabulary: k-means over RootSIFT descriptors of the gallery itself (faiss, ``words``
  centroids, 2^12 by default, fewer (a power of two) when the gallery has under 40
  descriptors per word; ``10 * words`` descriptors drawn, seeded; 8 iterations); descriptors
  go to their nearest word through a faiss IVF over the centroids (``sqrt(words)`` lists, 8
  probed: about a tenth of the exhaustive cost; saved with the index, so a reloaded index
  assigns exactly as the saved one);
- scoring: each photo is a tf-idf vector ``w_t = count_t * log(n / df_t)`` over the words it
  holds, L2-normalised; the inverted file (a sparse word-by-photo matrix) gives the cosine of
  a query with every photo that shares a word with it, touching only those postings.

The index lives in a folder beside the gallery (``<gallery>.index`` by default), keyed by the
content of each file (SHA-256), so renaming a photo costs nothing and adding photos extracts,
assigns and stores only the new ones:

- ``index.json``: format, extractor settings, vocabulary size and seed;
- ``features/<k[:2]>/<k>.npz``: keypoints, RootSIFT descriptors (float16), strengths, size;
- ``vocabulary.npy`` (centroids) and ``vocabulary.faiss`` (the assignment graph);
- ``words.npz``: per photo key, its words and their counts;
- ``pairs.json``: verified inliers of gallery pairs seen by calibration, per match settings.

The vocabulary is trained once, on the gallery of the first build; photos added later are
assigned to it (the idf weights are recomputed over the current gallery, which is cheap).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
import zipfile
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from utils.data.images import ImageLoadError, load_image
from utils.retrieval.local_features import LocalFeatures

FORMAT = 1
WORDS = 2**12
PER_WORD = 10  # descriptors drawn per centroid for k-means (and the fewest per word)
GALLERY_PER_WORD = 40  # the vocabulary has at most one word per 40 gallery descriptors
PROBES = 8  # lists of centroids searched when assigning a descriptor to its word


def file_key(path: str | Path) -> str:
    """SHA-256 of a file's bytes: what the index is keyed by."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def extractor_settings(extractor) -> dict:
    """The settings that define an extractor's features (``name`` and its public numbers)."""
    settings = {"name": extractor.name}
    for key, value in sorted(vars(extractor).items()):
        if not key.startswith("_") and isinstance(value, int | float | str | bool):
            settings[key] = value
    return settings


class Vocabulary:
    """Visual words: k-means centroids and a faiss IVF assigning descriptors to them."""

    def __init__(self, centroids: np.ndarray, graph=None):
        import faiss

        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        if graph is None:
            k, dim = self.centroids.shape
            lists = max(1, int(np.sqrt(k)))
            graph = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim), dim, lists)
            graph.cp.seed = 0
            graph.train(self.centroids)
            graph.add(self.centroids)
        graph.nprobe = min(PROBES, graph.nlist)
        self.graph = graph

    def __len__(self) -> int:
        return len(self.centroids)

    @classmethod
    def train(
        cls, descriptors: np.ndarray, words: int = WORDS, seed: int = 0, iterations: int = 8
    ) -> Vocabulary:
        """k-means over at most ``PER_WORD * words`` descriptors drawn (seeded) from the rows.

        The number of words is lowered (to a power of two, at least 16) when there are fewer
        than ``PER_WORD`` descriptors per word.
        """
        import faiss

        descriptors = np.asarray(descriptors, np.float32)
        if len(descriptors) < 16 * PER_WORD:
            raise ValueError(
                f"{len(descriptors)} descriptors are too few to train a vocabulary "
                f"(at least {16 * PER_WORD})"
            )
        affordable = 2 ** int(np.log2(len(descriptors) / PER_WORD) + 0.1)  # ~10% slack
        words = max(16, min(words, affordable))
        rng = np.random.default_rng(seed)
        if len(descriptors) > PER_WORD * words:
            descriptors = descriptors[rng.choice(len(descriptors), PER_WORD * words, replace=False)]
        kmeans = faiss.Kmeans(
            descriptors.shape[1],
            words,
            niter=iterations,
            seed=seed,
            max_points_per_centroid=PER_WORD,
            verbose=False,
        )
        kmeans.train(np.ascontiguousarray(descriptors))
        return cls(kmeans.centroids)

    def assign(self, descriptors: np.ndarray) -> np.ndarray:
        """The nearest word of each descriptor, ``(N,)`` int64."""
        if not len(descriptors):
            return np.zeros(0, np.int64)
        _, nearest = self.graph.search(np.ascontiguousarray(descriptors, dtype=np.float32), 1)
        return nearest[:, 0]

    def histogram(self, descriptors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(words, counts)`` of the descriptors: distinct word ids (sorted) and how often."""
        return np.unique(self.assign(descriptors), return_counts=True)

    def save(self, folder: Path) -> None:
        """Write ``vocabulary.npy`` and ``vocabulary.faiss`` into ``folder``."""
        import faiss

        np.save(folder / "vocabulary.npy", self.centroids)
        faiss.write_index(self.graph, str(folder / "vocabulary.faiss.tmp"))
        os.replace(folder / "vocabulary.faiss.tmp", folder / "vocabulary.faiss")

    @classmethod
    def load(cls, folder: Path) -> Vocabulary:
        """Read what `save` wrote."""
        import faiss

        return cls(
            np.load(folder / "vocabulary.npy"), faiss.read_index(str(folder / "vocabulary.faiss"))
        )


def save_features(path: Path, features: LocalFeatures) -> None:
    """One photo's features as an ``.npz`` (descriptors as float16), written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(
        tmp,
        keypoints=features.keypoints.astype(np.float32),
        descriptors=features.descriptors.astype(np.float16),
        strengths=np.asarray(features.strengths, np.float32),
        size=np.array(features.size, np.int64),
    )
    os.replace(tmp, path)


def load_features(path: Path) -> LocalFeatures:
    """Read what `save_features` wrote (descriptors back to float32)."""
    try:
        with np.load(path) as data:
            return LocalFeatures(
                data["keypoints"],
                data["descriptors"].astype(np.float32),
                data["strengths"],
                tuple(int(v) for v in data["size"]),
            )
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: unreadable stored features ({err}); delete it") from err


def _extract_one(task: tuple) -> tuple[str, str | None]:
    """Worker: extract and store one photo's features; ``(key, error or None)``."""
    extractor, path, target = task
    try:
        save_features(Path(target), extractor.extract(load_image(path)))
    except ImageLoadError as err:
        return str(path), str(err)
    return str(path), None


def _damaged(path: Path, err: Exception, action: str) -> None:
    """Warn that a cache file is damaged (naming it) and what is done instead."""
    warnings.warn(f"{path}: damaged ({str(err).splitlines()[0]}); {action}", stacklevel=3)


class StoredFeatures(Sequence):
    """The gallery's features, read from the index folder on demand (a small cache)."""

    def __init__(self, index: ShortlistIndex, cache: int = 256):
        self.index = index
        self._load = lru_cache(maxsize=cache)(self._read)

    def _read(self, key: str) -> LocalFeatures:
        path = self.index.feature_path(key)
        try:
            return load_features(path)
        except ValueError:
            source = self.index.sources.get(key)
            if source is None:
                raise
            warnings.warn(
                f"{path}: damaged stored features; re-extracted from {source}", stacklevel=2
            )
            features = self.index.extractor.extract(load_image(source))
            save_features(path, features)
            return features

    def __len__(self) -> int:
        return len(self.index.keys)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self._load(self.index.keys[i])


class ShortlistIndex:
    """The persistent visual-word index of one gallery; see the module docstring.

    ``keys`` is the current gallery, in order (one content key per photo, set by `update`);
    `search` and `search_gallery` return positions in it. ``features_folder``: where photo
    features are stored (default ``folder/features``); several indexes with the same
    extractor may share one. ``timings``: seconds spent by the last `update` per step.
    """

    def __init__(
        self,
        folder: str | Path,
        extractor,
        words: int = WORDS,
        seed: int = 0,
        iterations: int = 8,
        progress: bool = True,
        features_folder: str | Path | None = None,
    ):
        self.folder = Path(folder)
        self.features_folder = Path(features_folder or self.folder / "features")
        self.extractor, self.words, self.seed = extractor, words, seed
        self.iterations, self.progress = iterations, progress
        self.meta = {
            "format": FORMAT,
            "extractor": extractor_settings(extractor),
            "words": words,
            "seed": seed,
        }
        self.vocabulary: Vocabulary | None = None
        self.histograms: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.pairs: dict[str, int] = {}
        self.keys: list[str] = []
        self.inverted = None  # (words, photos) CSR: the inverted file
        self.idf = np.zeros(0)
        self.timings: dict[str, float] = {}
        self.sources: dict[str, str] = {}  # content key -> a file it was read from (healing)
        self._check_or_create()

    # --- files -------------------------------------------------------------------------
    def feature_path(self, key: str) -> Path:
        """Where the features of the photo with content ``key`` are stored."""
        return self.features_folder / key[:2] / f"{key}.npz"

    def _check_or_create(self) -> None:
        manifest = self.folder / "index.json"
        if self.folder.exists() and not self.folder.is_dir():
            raise ValueError(f"{self.folder}: not a folder, cannot hold a gallery index")
        if manifest.is_file():
            try:
                saved = json.loads(manifest.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                _damaged(manifest, err, "rebuilding the index (stored features are kept)")
                self._drop_words()
                return
            if saved != self.meta:
                raise ValueError(
                    f"{manifest}: built with other settings ({saved}, now {self.meta}); "
                    "delete the folder or choose another index path"
                )
            if (self.folder / "vocabulary.npy").is_file():
                try:
                    self.vocabulary = Vocabulary.load(self.folder)
                except (OSError, ValueError, RuntimeError) as err:
                    _damaged(self.folder / "vocabulary.npy", err, "training a new vocabulary")
                    self._drop_words()
                    return
            if (self.folder / "words.npz").is_file():
                try:
                    self._load_words()
                except ValueError as err:
                    _damaged(self.folder / "words.npz", err, "assigning the words again")
                    self.histograms = {}
            pairs = self.folder / "pairs.json"
            if pairs.is_file():
                try:
                    self.pairs = json.loads(pairs.read_text(encoding="utf-8"))
                    if not isinstance(self.pairs, dict):
                        raise ValueError(f"expected an object, got {type(self.pairs).__name__}")
                except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as err:
                    _damaged(pairs, err, "verifying those pairs again")
                    self.pairs = {}
        elif self.folder.is_dir() and any(self.folder.iterdir()):
            raise ValueError(f"{self.folder}: exists and is not a gallery index (no index.json)")

    def _drop_words(self) -> None:
        """Forget the vocabulary, words and pairs (rebuilt by `update`); features stay."""
        self.vocabulary, self.histograms, self.pairs = None, {}, {}

    def _load_words(self) -> None:
        path = self.folder / "words.npz"
        try:
            with np.load(path) as data:
                keys, offsets = data["keys"], data["offsets"]
                words, counts = data["words"], data["counts"]
        except (OSError, KeyError, ValueError) as err:
            raise ValueError(f"{path}: unreadable ({err}); delete it to rebuild") from err
        for k, key in enumerate(keys):
            a, b = offsets[k], offsets[k + 1]
            self.histograms[str(key)] = (words[a:b].astype(np.int64), counts[a:b])

    def save(self) -> None:
        """Write ``index.json``, the vocabulary, ``words.npz`` and ``pairs.json``."""
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "index.json").write_text(json.dumps(self.meta, indent=1), "utf-8")
        if self.vocabulary is not None:
            self.vocabulary.save(self.folder)
        keys = sorted(self.histograms)
        sizes = [len(self.histograms[k][0]) for k in keys]
        empty = np.zeros(0, np.int64)
        tmp = self.folder / "words.tmp.npz"
        np.savez(
            tmp,
            keys=np.array(keys, dtype="U64"),
            offsets=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
            words=np.concatenate([self.histograms[k][0] for k in keys] or [empty]).astype(np.int32),
            counts=np.concatenate([self.histograms[k][1] for k in keys] or [empty]).astype(
                np.int32
            ),
        )
        os.replace(tmp, self.folder / "words.npz")
        self.save_pairs()

    def save_pairs(self) -> None:
        """Write the cache of verified gallery pairs (``pairs.json``)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / "pairs.tmp.json"
        tmp.write_text(json.dumps(self.pairs), "utf-8")
        os.replace(tmp, self.folder / "pairs.json")

    # --- building ----------------------------------------------------------------------
    def store_features(self, paths: Sequence[Path], workers: int = 1) -> list[str | None]:
        """Extract and store the features of the photos not yet stored; their keys.

        Returns, per path, its content key, or None when the file could not be read (a
        warning names it). ``workers`` > 1 extracts in that many processes.
        """
        self.folder.mkdir(parents=True, exist_ok=True)  # an index folder from the first photo on
        (self.folder / "index.json").write_text(json.dumps(self.meta, indent=1), "utf-8")
        keys = [file_key(p) for p in paths]
        self.sources.update({key: str(path) for path, key in zip(paths, keys, strict=True)})
        todo = {}
        for path, key in zip(paths, keys, strict=True):
            if key not in todo and not self.feature_path(key).is_file():
                todo[key] = path
        tasks = [(self.extractor, str(p), str(self.feature_path(k))) for k, p in todo.items()]
        bar = tqdm(total=len(tasks), desc="index: features", disable=not self.progress)
        failed = set()
        if workers > 1 and len(tasks) > 1:
            import multiprocessing

            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                for path, error in pool.imap_unordered(_extract_one, tasks, chunksize=4):
                    failed |= {path} if error else set()
                    bar.update()
        else:
            for task in tasks:
                path, error = _extract_one(task)
                failed |= {path} if error else set()
                bar.update()
        bar.close()
        if failed:
            for path in sorted(failed):
                warnings.warn(f"{path}: unreadable image, left out of the gallery", stacklevel=2)
        return [None if str(p) in failed else k for p, k in zip(paths, keys, strict=True)]

    def update(self, paths: Sequence[Path], workers: int = 1) -> list[int]:
        """Make the index describe exactly these gallery photos (in this order); save it.

        New photos are extracted (`store_features`), the vocabulary trained if there is none
        yet, and new photos assigned to it; photos already indexed cost only hashing their
        file. Returns the positions in ``paths`` of the photos kept (readable ones).
        """
        start = time.perf_counter()
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "index.json").write_text(json.dumps(self.meta, indent=1), "utf-8")
        keys = self.store_features(paths, workers)
        self.timings = {"features_s": time.perf_counter() - start}
        kept = [i for i, k in enumerate(keys) if k is not None]
        self.keys = [keys[i] for i in kept]
        if not self.keys:
            raise ValueError("no readable gallery photo to index")
        stored = StoredFeatures(self, cache=1)
        if self.vocabulary is None:
            unique = list(dict.fromkeys(self.keys))
            rng = np.random.default_rng(self.seed)
            budget = PER_WORD * self.words
            per_photo = max(1, budget // len(unique) + 1)
            sample, total = [], 0
            for key in tqdm(unique, desc="index: sample", disable=not self.progress):
                desc = stored._read(key).descriptors
                total += len(desc)
                if len(desc) > per_photo:
                    desc = desc[rng.choice(len(desc), per_photo, replace=False)]
                sample.append(desc)
            # at least GALLERY_PER_WORD of the gallery's descriptors per word
            words = min(self.words, 2 ** max(4, int(np.log2(max(1, total / GALLERY_PER_WORD)))))
            self.vocabulary = Vocabulary.train(
                np.concatenate(sample), words, self.seed, self.iterations
            )
            self.histograms = {}
        self.timings["vocabulary_s"] = time.perf_counter() - start - sum(self.timings.values())
        missing = [k for k in dict.fromkeys(self.keys) if k not in self.histograms]
        for key in tqdm(missing, desc="index: words", disable=not self.progress):
            self.histograms[key] = self.vocabulary.histogram(stored._read(key).descriptors)
        self.timings["words_s"] = time.perf_counter() - start - sum(self.timings.values())
        self._build_inverted()
        self.save()
        self.timings["inverted_s"] = time.perf_counter() - start - sum(self.timings.values())
        return kept

    def _build_inverted(self) -> None:
        """The tf-idf inverted file of the current gallery (idf over the current photos)."""
        from scipy import sparse

        n, k = len(self.keys), len(self.vocabulary)
        rows = [np.full(len(self.histograms[key][0]), i) for i, key in enumerate(self.keys)]
        cols = [self.histograms[key][0] for key in self.keys]
        vals = [self.histograms[key][1] for key in self.keys]
        matrix = sparse.csr_matrix(
            (np.concatenate(vals).astype(np.float64), (np.concatenate(rows), np.concatenate(cols))),
            shape=(n, k),
        )
        df = np.bincount(matrix.indices, minlength=k)
        self.idf = np.log(n / np.maximum(df, 1))
        matrix = matrix.multiply(self.idf[None, :]).tocsr()
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
        matrix = sparse.diags(1 / np.maximum(norms, 1e-12)) @ matrix
        self.inverted = matrix.T.tocsr()  # words x photos: row t is the posting list of t

    def features(self, cache: int = 256) -> StoredFeatures:
        """The current gallery's features, read on demand."""
        return StoredFeatures(self, cache)

    # --- search ------------------------------------------------------------------------
    def _scores(self, words: np.ndarray, counts: np.ndarray) -> np.ndarray:
        if self.inverted is None:
            raise ValueError(f"{self.folder}: the index is empty; call update first")
        weights = counts * self.idf[words]
        weights = weights / max(np.linalg.norm(weights), 1e-12)
        postings = self.inverted[words]  # only the posting lists of the query's words
        return np.asarray(postings.T @ weights).ravel()

    def _top(self, scores: np.ndarray, n: int, exclude: int | None = None):
        if exclude is not None:
            scores = scores.copy()
            scores[exclude] = -np.inf
        n = min(n, len(scores) - (exclude is not None))
        if n <= 0:
            return np.zeros(0, np.int64), np.zeros(0)
        top = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
        top = top[np.lexsort((top, -scores[top]))]  # best first, ties by gallery position
        return top.astype(np.int64), scores[top]

    def search(self, query: LocalFeatures, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Gallery positions of the ``n`` photos of highest tf-idf cosine, and those cosines."""
        words, counts = self.vocabulary.histogram(query.descriptors)
        return self._top(self._scores(words, counts), n)

    def search_gallery(self, position: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """`search` for gallery photo ``position`` as a query, itself left out."""
        words, counts = self.histograms[self.keys[position]]
        return self._top(self._scores(words, counts), n, exclude=position)

    def pair_key(self, i: int, j: int, settings) -> str:
        """Cache key of the verified pair of gallery photos ``i`` and ``j`` (unordered)."""
        a, b = sorted((self.keys[i], self.keys[j]))
        tag = hashlib.sha256(repr(settings).encode()).hexdigest()[:8]
        return f"{a[:20]}:{b[:20]}:{tag}"
