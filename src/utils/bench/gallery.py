"""The leaderboard gallery's cost: embedding rate here, search time and memory at GLDv2 sizes.

Embedding: the leaderboard network (EfficientNet-Lite2 with its ImageNet weights, the
architecture notebook 04's repeat fine-tunes; ``model.embed``, 1280-d) on random batches at
each ``--sides``, images per second on this machine's CPU (network only; decoding is `bench
loader`'s). Its ratio is against the smallest side, in the same run.

Frozen descriptor (08's ``pretrained`` vectors, `utils.retrieval.descriptor.GlobalDescriptor`:
Lite2 at ``size`` and 0.707 of it): photos per second on random RGB photos of ``photo_side``
pixels (gldv2-sample's photos are 256 x 256), its trunk run by torch and by ONNX Runtime
(`utils.models.onnx_trunk`, where installed), each with and without the mirrored views; the
ratios ONNX over torch and without flips over with, in the same run, and the largest difference
between the two engines' vectors; then the ImageNet detector (`utils.ood.imagenet`, the same
Lite2 whole at 260 px) on the same photos by each engine, its ratio and largest score difference.

Search: a gallery of ``N`` random unit vectors of the network's dimension and 1,000 queries near
gallery rows (as `utils.bench.retrieval`): faiss exact inner product and IVF, queries per second,
memory and recall@1 against exact; the time for a whole test set is the measured rate times its
size (`TEST_SETS`: the public sample's 10,345 ids and GLDv2's 117,577 recognition test images),
the search being linear in the queries.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from utils.bench.retrieval import noisy_queries
from utils.retrieval import index as retrieval

TEST_SETS = {"public sample": 10_345, "GLDv2 test": 117_577}
GLDV2_CLEAN = 1_580_470


def bench_embedding(sides=(96, 256), batch: int = 16, steps: int = 3, threads: int = 0) -> dict:
    """Images per second of the leaderboard network's ``embed`` at each side (CPU, fp32)."""
    from utils.models.backbones import build_model

    if threads:
        torch.set_num_threads(threads)
    model = build_model("efficientnet-lite2", num_classes=10, pretrained=False).eval()
    out = {}
    with torch.no_grad():
        for side in sides:
            x = torch.randn(batch, 3, side, side)
            dim = model.embed(x).shape[1]  # warm-up
            start = time.perf_counter()
            for _ in range(steps):
                model.embed(x)
            out[side] = round(batch * steps / (time.perf_counter() - start), 1)
    base = out[min(out)]
    return {
        "dim": int(dim),
        "images_per_second": out,
        "ratio_to_smallest": {s: round(r / base, 3) for s, r in out.items()},
    }


def bench_frozen(photos: int = 8, photo_side: int = 256, size: int = 400) -> dict:
    """Photos per second of the frozen descriptor by engine, with flips and without."""
    from utils.models.backbones import imagenet_network
    from utils.models.onnx_trunk import onnx_available
    from utils.retrieval.descriptor import GlobalDescriptor

    if photos < 1:
        raise ValueError(f"photos must be >= 1, not {photos}")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (photo_side, photo_side, 3), np.uint8) for _ in range(photos)]
    network = imagenet_network("efficientnet-lite2")
    engines = ("torch", "onnx") if onnx_available() else ("torch",)
    rates, vectors = {}, {}
    for engine in engines:
        for flip in (True, False):
            descriptor = GlobalDescriptor(network, size=size, flip=flip, engine=engine)
            descriptor(images[:1])  # warm-up (and the ONNX export)
            start = time.perf_counter()
            vectors[engine, flip] = descriptor(images)
            rates[f"{engine}, {'flips' if flip else 'no flips'}"] = round(
                photos / (time.perf_counter() - start), 2
            )
    fastest = engines[-1]
    out = {
        "photos": photos,
        "photo_side": photo_side,
        "size": size,
        "photos_per_second": rates,
        "speed-up without flips": round(
            rates[f"{fastest}, no flips"] / rates[f"{fastest}, flips"], 3
        ),
    }
    if "onnx" in engines:
        out["onnx over torch"] = round(rates["onnx, flips"] / rates["torch, flips"], 3)
        out["largest vector difference"] = float(
            np.abs(vectors["onnx", True] - vectors["torch", True]).max()
        )
    out["imagenet detector"] = bench_imagenet_detector(network, images, engines)
    return out


def bench_imagenet_detector(network, images: list[np.ndarray], engines: tuple[str, ...]) -> dict:
    """Photos per second of the ImageNet detector (`utils.ood.imagenet`, 260 px) by engine."""
    from utils.ood.imagenet import ImagenetDetector

    rates, scores = {}, {}
    for engine in engines:
        detector = ImagenetDetector(network=network, engine=engine)
        batch = detector.prepare(images)
        detector.score(batch[:1])  # warm-up (and the ONNX export)
        start = time.perf_counter()
        scores[engine] = detector.score(batch)
        rates[engine] = round(len(images) / (time.perf_counter() - start), 2)
    out = {"photos_per_second": rates}
    if "onnx" in engines:
        out["onnx over torch"] = round(rates["onnx"] / rates["torch"], 3)
        out["largest score difference"] = float(np.abs(scores["onnx"] - scores["torch"]).max())
    return out


def _gallery(size: int, dim: int, seed: int) -> np.ndarray:
    """``(size, dim)`` float32 random unit rows, drawn in chunks (bounded extra memory)."""
    rng = np.random.default_rng(seed)
    data = np.empty((size, dim), np.float32)
    for start in range(0, size, 100_000):
        block = rng.standard_normal((min(100_000, size - start), dim), dtype=np.float32)
        data[start : start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return data


def bench_gallery_search(
    size: int,
    dim: int = 1280,
    queries: int = 1000,
    k: int = 10,
    nlist: int = 1024,
    nprobes: tuple[int, ...] = (32,),
    seed: int = 0,
    ivf: bool = True,
) -> dict:
    """Exact (and, with ``ivf``, IVF) search on one synthetic gallery, projected to test sets.

    IVF is trained and filled once (``build_s``) and searched at every ``nprobes`` value, each
    its own row: lists visited per query against recall@1 and speed.
    """
    gallery = _gallery(size, dim, seed)
    query = noisy_queries(gallery, queries, noise=0.75 / np.sqrt(dim), seed=seed + 1)
    rows = {}
    start = time.perf_counter()
    exact_index = retrieval.EmbeddingIndex(gallery, "exact")
    build = time.perf_counter() - start
    start = time.perf_counter()
    _, exact = exact_index.search(query, k)
    search = time.perf_counter() - start
    rows["faiss exact"] = {
        "build_s": build,
        "search_s": search,
        "recall_at_1": 1.0,
        "memory_gb": size * dim * 4 / 1e9,
    }
    del exact_index
    if not ivf:
        return _projected(rows, size, dim, queries)
    start = time.perf_counter()
    ivf = retrieval.EmbeddingIndex(gallery, "ivf", nlist)
    build = time.perf_counter() - start
    lists = ivf.index.nlist
    for nprobe in sorted({min(n, lists) for n in nprobes}):
        ivf.index.nprobe = nprobe
        start = time.perf_counter()
        _, approx = ivf.search(query, k)
        search = time.perf_counter() - start
        rows[f"faiss IVF{lists}, nprobe {nprobe}"] = {
            "build_s": build,
            "search_s": search,
            "recall_at_1": retrieval.recall_at_1(approx, exact),
            "memory_gb": (size * (dim * 4 + 8) + lists * dim * 4) / 1e9,
        }
    return _projected(rows, size, dim, queries)


def _projected(rows: dict, size: int, dim: int, queries: int) -> dict:
    for row in rows.values():
        row["queries_per_second"] = queries / row["search_s"]
        row["projected_s"] = {name: n / row["queries_per_second"] for name, n in TEST_SETS.items()}
    return {"gallery": size, "dim": dim, "queries": queries, "methods": rows}


def bench_gallery(
    sizes=(100_000, GLDV2_CLEAN),
    sides=(96, 256),
    threads: int = 0,
    queries: int = 1000,
    ivf_max: int = 200_000,
    nlist: int = 1024,
    nprobes: tuple[int, ...] = (32,),
    frozen_photos: int = 8,
) -> dict:
    """The three parts of the module docstring; IVF only up to ``ivf_max`` vectors.

    ``frozen_photos``: photos the frozen descriptor reads each way (0: not measured).

    IVF has ``nlist`` lists and is searched at each of ``nprobes``. At 1,580,470 vectors the
    process peaks near 19 GB (the gallery and the filled IVF index).
    """
    return {
        "embedding": bench_embedding(sides, threads=threads),
        "frozen": bench_frozen(frozen_photos) if frozen_photos else None,
        "search": [
            bench_gallery_search(
                n, queries=queries, nlist=nlist, nprobes=tuple(nprobes), ivf=n <= ivf_max
            )
            for n in sizes
        ],
    }


def print_gallery(result: dict) -> None:
    """The two tables, as text."""
    emb = result["embedding"]
    print(f"leaderboard network (EfficientNet-Lite2, {emb['dim']}-d), CPU, network only:")
    for side, rate in emb["images_per_second"].items():
        print(f"  {side:>4} px  {rate:>8.1f} images/s  ratio {emb['ratio_to_smallest'][side]:.3f}")
    frozen = result.get("frozen")
    if frozen:
        print(
            f"frozen descriptor ({frozen['size']} and 0.707x px), {frozen['photos']} random "
            f"{frozen['photo_side']}-px photos each way:"
        )
        for name, rate in frozen["photos_per_second"].items():
            print(f"  {name:<16} {rate:>8.2f} photos/s")
        if "onnx over torch" in frozen:
            print(
                f"  onnx with flips: {frozen['onnx over torch']:.3f}x as fast as torch, vectors "
                f"within {frozen['largest vector difference']:.1e}"
            )
        print(f"  without flips: {frozen['speed-up without flips']:.3f}x as fast")
        detector = frozen.get("imagenet detector")
        if detector:
            rates = ", ".join(f"{k} {v:.2f}" for k, v in detector["photos_per_second"].items())
            print(f"ImageNet detector (260 px), photos per second: {rates}")
            if "onnx over torch" in detector:
                print(
                    f"  onnx: {detector['onnx over torch']:.3f}x as fast as torch, scores within "
                    f"{detector['largest score difference']:.1e}"
                )
    for row in result["search"]:
        print(f"gallery {row['gallery']:,} x {row['dim']}-d, {row['queries']} queries measured:")
        for name, f in row["methods"].items():
            projected = ", ".join(f"{n} {s / 60:.1f} min" for n, s in f["projected_s"].items())
            print(
                f"  {name:<26} {f['queries_per_second']:>8.1f} q/s  {f['memory_gb']:>6.2f} GB"
                f"  build {f['build_s']:.1f} s  recall@1 {f['recall_at_1']:.3f}  ({projected})"
            )
