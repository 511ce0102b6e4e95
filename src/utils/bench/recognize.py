"""Recognition benchmark: the pretrained shortlist, exhaustive matching, visual words, by size.

The gallery is the real photos' gallery (`utils.retrieval.realphotos`, the photos not in the
query fold) padded with generated distractor photos (`make_distractors`: synthetic landmarks
of `utils.minigld`, ``views`` photos each, 640x480 by default) up to each size. The queries
are one fold of the real photos (known landmarks, unknown ones and non-landmarks). For each
size and mode (``global``: the default ``recognize``, the pretrained descriptor's top
``GLOBAL_TOP_K`` by whitened cosine verified, kNN voting, `utils.retrieval.voting`;
``exhaustive``: every gallery photo verified;
``shortlist``: the `utils.retrieval.vocabulary.ShortlistIndex` top ``N`` verified): per-query
seconds (feature extraction of the query included: RootSIFT, and the descriptor in
``global``), top-1 accuracy, GAP and AUROC (`realphotos.summarise`);
for the shortlist, the one-time costs of the index apart (gallery features, vocabulary,
assignment) and calibration, and how many known-landmark queries that exhaustive matching
gets right have its winner (the photo of most inliers) among the photos verified.
Exhaustive matching is measured up to ``exhaustive_max`` photos, the global mode up to
``global_max`` (each gallery photo's descriptor is computed once and cached,
`utils.retrieval.gallery.DescriptorStore`); ``search_s`` is the exact cosine search over the
gallery's descriptors alone, which is what grows with the gallery in that mode.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from utils.minigld.camera import compose, view
from utils.minigld.render import KINDS, LandmarkSpec, landmark_layers
from utils.retrieval.recognize import GLOBAL_TOP_K, SHORTLIST
from utils.retrieval.vocabulary import WORDS

REPO = Path(__file__).resolve().parents[3]  # the checkout: src/utils/bench/ is three below
DISTRACTORS = REPO / "data" / "bench" / "distractors"
TIMES = ("day", "day", "golden", "overcast")


def distractor_path(folder: Path, index: int, views: int) -> Path:
    """Where distractor ``index`` lives: ``folder/synthetic_LLLLL/vV.jpg``."""
    return folder / f"synthetic_{index // views:05d}" / f"v{index % views}.jpg"


def make_distractors(
    folder: str | Path,
    count: int,
    seed: int = 0,
    views: int = 5,
    size: tuple[int, int] = (640, 480),
    progress: bool = True,
) -> list[Path]:
    """``count`` photo-like JPEGs of synthetic landmarks, ``views`` photos each, made once.

    Deterministic: photo ``i`` depends only on ``(seed, i)``; existing files are kept, so a
    larger count adds photos. Each landmark is a `utils.minigld` structure with its own
    drawing seed, photographed from random viewpoints and times of day with sensor noise.
    """
    folder = Path(folder)
    paths = [distractor_path(folder, i, views) for i in range(count)]
    for index in tqdm(range(count), desc="distractors", disable=not progress):
        path = paths[index]
        if path.is_file():
            continue
        landmark = index // views
        spec = LandmarkSpec(landmark, "distractor", KINDS[landmark % len(KINDS)], seed + landmark)
        rng = np.random.default_rng([seed, index])
        width, height = size if rng.random() < 0.75 else size[::-1]
        photo = view(
            compose(landmark_layers(spec), rng, str(rng.choice(TIMES))), rng, (width, height)
        )
        photo = np.clip(photo + rng.normal(0, 5, photo.shape), 0, 255).astype(np.uint8)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        Image.fromarray(photo).save(tmp, format="JPEG", quality=88)
        tmp.replace(path)
    return paths


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def bench_recognize(
    photos: str | Path,
    sizes: list[int],
    distractors: str | Path = DISTRACTORS,
    cache: str | Path | None = None,
    shortlist: int = SHORTLIST,
    exhaustive_max: int = 1000,
    features: int = 2000,
    max_side: int = 1024,
    words: int = WORDS,
    calibration_queries: int = 100,
    part: str = "all",
    fold: int = 0,
    workers: int = 1,
    progress: bool = True,
    global_max: int = 1000,
) -> dict:
    """Every mode at every gallery size, in one run; see the module docstring.

    ``cache``: where the index and gallery features are kept between runs (default beside
    ``distractors``); features are extracted once per photo for all sizes, and the vocabulary
    is trained once, on the largest gallery. Calibration uses ``calibration_queries`` gallery
    photos as queries in both modes (the same seeded draw).
    """
    from utils.data.gldv2 import read_csv_checked
    from utils.data.images import load_image
    from utils.retrieval.gallery import DescriptorStore
    from utils.retrieval.local_features import RootSift
    from utils.retrieval.realphotos import (
        assign_folds,
        query_row,
        select_part,
        shared_descriptor,
        summarise,
    )
    from utils.retrieval.recognize import GLOBAL_TOP_K, Recognizer
    from utils.retrieval.vocabulary import ShortlistIndex
    from utils.retrieval.voting import VoteRule

    photos = Path(photos)
    manifest = read_csv_checked(photos / "manifest.csv", ("file", "label"))
    frame = assign_folds(select_part(manifest[["file", "label"]], part))
    in_gallery = (frame["in_gallery"] & (frame["fold"] != fold)).to_numpy()
    real = [photos / f for f in frame["file"][in_gallery]]
    real_labels = frame["label"][in_gallery].tolist()
    queries = frame[frame["fold"] == fold]
    largest = max(sizes)
    if largest <= len(real):
        raise ValueError(f"gallery sizes must exceed the {len(real)} real gallery photos")
    padding = make_distractors(distractors, largest - len(real), progress=progress)
    extractor = RootSift(max_features=features, max_side=max_side)
    tag = f"f{features}-s{max_side}"
    cache = Path(cache) if cache else Path(distractors).parent / "recognize-cache"
    index = ShortlistIndex(
        cache / f"index-{tag}-w{words}-g{largest}",
        extractor,
        words=words,
        progress=progress,
        features_folder=cache / f"features-{tag}",
    )
    paths = real + padding
    labels = real_labels + [p.parent.name for p in padding]
    index.update(paths, workers=workers)
    build = {k: round(v, 1) for k, v in index.timings.items()}
    build.update(photos=len(paths), words=len(index.vocabulary))

    descriptor = shared_descriptor() if global_max > 0 else None
    described, extract_s, vectors, describe_s = [], [], [], []
    for file in queries["file"]:
        image = load_image(photos / file)
        start = time.perf_counter()
        described.append(extractor.extract(image))
        extract_s.append(time.perf_counter() - start)
        if descriptor is not None:
            start = time.perf_counter()
            vectors.append(descriptor([image])[0])
            describe_s.append(time.perf_counter() - start)
    rows_out = []
    for size in sorted(sizes):
        index.update(paths[:size])
        gallery_labels = labels[:size]
        modes = ["shortlist"] + (["exhaustive"] if size <= exhaustive_max else [])
        modes += ["global"] if descriptor is not None and size <= global_max else []
        winners, search_s = {}, None
        for mode in sorted(modes):  # exhaustive first: its winners judge the shortlists
            kwargs = {
                "shortlist": {"shortlist": index, "shortlist_size": shortlist},
                "global": {"top_k": GLOBAL_TOP_K, "vote": VoteRule()},
                "exhaustive": {},
            }[mode]
            if mode == "global":
                kwargs["embedder"] = descriptor
            recognizer = Recognizer(
                extractor, progress=progress, calibration_queries=calibration_queries, **kwargs
            )
            gallery = index.features(cache=4 * shortlist)
            if mode == "exhaustive":
                gallery = list(tqdm(gallery, desc="load gallery", disable=not progress))
            embeddings = None
            if mode == "global":
                embeddings, found = DescriptorStore(cache, descriptor, progress).get(paths[:size])
                if len(found) != size:
                    raise ValueError(f"{size - len(found)} gallery photos could not be described")
                search_s = _search_seconds(embeddings, np.stack(vectors))
            _, calibrate_s = _timed(recognizer.fit_described, gallery, embeddings, gallery_labels)
            rows, seconds, contains = [], [], []
            for q, (file, label, known) in enumerate(
                zip(queries["file"], queries["label"], queries["in_gallery"], strict=True)
            ):
                vector = vectors[q] if mode == "global" else None
                result, spent = _timed(recognizer.recognize_described, described[q], vector)
                seconds.append(spent + extract_s[q] + (describe_s[q] if vector is not None else 0))
                top = result.candidates[0] if result.candidates else None
                if mode == "exhaustive":
                    winners[file] = (top.index if top else -1, result.best == label and known)
                elif file in winners and winners[file][1] and mode == "shortlist":
                    found, _ = recognizer.search_shortlist(described[q])
                    contains.append(winners[file][0] in recognizer.verified_shortlist(found))
                elif file in winners and winners[file][1]:  # global: its top-k by cosine
                    verified = {c.index for c in result.candidates}
                    whitened = recognizer.voting.whitened_cosine(vector)
                    order = np.argsort(-whitened)[: recognizer.top_k]
                    contains.append(winners[file][0] in set(order.tolist()) | verified)
                rows.append(query_row(file, fold, label if known else "", result))
            metrics = summarise(pd.DataFrame(rows))
            rows_out.append(
                {
                    "gallery": size,
                    "mode": mode,
                    "queries": len(rows),
                    "seconds_per_query": round(float(np.mean(seconds)), 3),
                    "median_seconds_per_query": round(float(np.median(seconds)), 3),
                    "calibration_s": round(calibrate_s, 1),
                    "search_s": round(search_s, 5) if mode == "global" else None,
                    "accuracy": round(metrics["accuracy"], 3),
                    "gap": round(metrics["gap"], 3),
                    "auroc": round(metrics["auroc"], 3),
                    "shortlist_has_exhaustive_winner": (
                        [int(sum(contains)), len(contains)] if contains else None
                    ),
                }
            )
    return {
        "cpus": os.cpu_count(),
        "load_average": [round(v, 1) for v in os.getloadavg()],
        "features": features,
        "max_side": max_side,
        "shortlist": shortlist,
        "calibration_queries": calibration_queries,
        "query_extract_s": round(float(np.mean(extract_s)), 3),
        "query_describe_s": round(float(np.mean(describe_s)), 3) if describe_s else None,
        "index_build": build,
        "rows": rows_out,
    }


def _search_seconds(gallery: np.ndarray, queries: np.ndarray) -> float:
    """Seconds per query of exact cosine search (faiss inner product) over ``gallery``."""
    import faiss

    index = faiss.IndexFlatIP(gallery.shape[1])
    index.add(np.ascontiguousarray(gallery, np.float32))
    start = time.perf_counter()
    index.search(np.ascontiguousarray(queries, np.float32), GLOBAL_TOP_K)
    return (time.perf_counter() - start) / len(queries)


def print_recognize(result: dict) -> None:
    """The table of `bench_recognize`, as text."""
    b = result["index_build"]
    print(
        f"{result['cpus']} CPUs, load average {result['load_average']}; RootSIFT "
        f"{result['features']} features at {result['max_side']} px; shortlist N = "
        f"{result['shortlist']}; {result['calibration_queries']} calibration queries"
    )
    print(
        f"index over {b['photos']} photos ({b['words']} words), one-time: features "
        f"{b['features_s']} s, vocabulary {b['vocabulary_s']} s, assignment {b['words_s']} s; "
        f"query extraction {result['query_extract_s']} s, descriptor "
        f"{result['query_describe_s']} s"
    )
    print(
        "gallery  mode        s/query  median  calib s  accuracy  GAP    AUROC  winner kept"
        "  search ms"
    )
    for r in result["rows"]:
        kept = r["shortlist_has_exhaustive_winner"]
        print(
            f"{r['gallery']:>7,}  {r['mode']:<10}  {r['seconds_per_query']:>7.3f}  "
            f"{r['median_seconds_per_query']:>6.3f}  {r['calibration_s']:>7.1f}  "
            f"{r['accuracy']:>8.3f}  {r['gap']:.3f}  {r['auroc']:.3f}  "
            f"{f'{kept[0]}/{kept[1]}' if kept else '-':>11}  "
            f"{'-' if r.get('search_s') is None else format(1000 * r['search_s'], '.2f')}"
        )
