"""Demo benchmark: seconds per answer of the Gradio demo with a gallery of ``size`` photos.

The gallery is the real photos' gallery of fold 0 (`utils.retrieval.realphotos.assign_folds`:
photos of landmarks with at least 3 photos, not in fold 0) padded with generated distractor
photos (`utils.bench.recognize.make_distractors`) up to ``size``; it is built as
``python -m utils demo --gallery`` builds one (`utils.demo.gallery.fit_recognizer`; RootSIFT,
visual-word shortlist, calibrated rejection) and, with ``run``, shows that run's detectors
(`utils.demo.gallery.run_detectors`). The queries are the photos of fold 0 (known landmarks,
unknown ones, non-landmarks), each given as a file. Two times per query, after one warm-up
answer that is not counted:

- ``answer``: `utils.demo.answer.Demo.answer` (reading and checking the file, RootSIFT, the
  shortlist, verification, every detector, the drawing of the matches);
- ``served``: the whole round trip through the app on localhost with `gradio_client`, one
  request at a time (upload, queue, answer, the page's images written and downloaded).

The one-time cost of the gallery (features, vocabulary, calibration) is reported apart.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from utils.bench.recognize import DISTRACTORS, make_distractors


def _stats(seconds: list[float]) -> dict:
    values = np.asarray(seconds, np.float64)
    return {
        "mean": round(float(values.mean()), 3),
        "median": round(float(np.median(values)), 3),
        "p95": round(float(np.percentile(values, 95)), 3),
        "max": round(float(values.max()), 3),
    }


def bench_demo(
    photos: str | Path,
    size: int = 60,
    run: str | Path | None = None,
    cache: str | Path | None = None,
    distractors: str | Path = DISTRACTORS,
    served: bool = True,
    threads: int = 1,
    progress: bool = True,
) -> dict:
    """Per-answer seconds of the demo (module docstring); ``cache``: the gallery's index.

    ``threads``: CPU threads per answer, as ``python -m utils demo --threads`` (default 1).
    """
    from utils.data.gldv2 import read_csv_checked
    from utils.demo.answer import Demo
    from utils.demo.gallery import fit_recognizer, load_detectors, run_detectors, set_threads
    from utils.retrieval.realphotos import assign_folds

    set_threads(threads)
    photos = Path(photos)
    load_before = [round(v, 1) for v in os.getloadavg()]
    frame = assign_folds(read_csv_checked(photos / "manifest.csv", ("file", "label")))
    known = frame[frame["in_gallery"] & (frame["fold"] != 0)].head(size)
    padding = make_distractors(distractors, size - len(known), progress=progress)
    paths = [photos / f for f in known["file"]] + padding
    labels = known["label"].tolist() + [p.parent.name for p in padding]
    cache = Path(cache) if cache else Path(distractors).parent / "demo-cache" / f"gallery-{size}"
    start = time.perf_counter()
    recognizer, kept = fit_recognizer(paths, labels, cache, progress=progress)
    build_s = time.perf_counter() - start
    detectors, gate = run_detectors(run) if run is not None else ({}, None)
    demo = Demo(recognizer, kept, load_detectors(detectors, progress=progress), gate)
    queries = [photos / f for f in frame["file"][frame["fold"] == 0]]
    demo.answer(queries[0])  # warm-up
    answer_s = [demo.answer(q).seconds for q in queries]
    result = {
        "cpus": os.cpu_count(),
        "threads": threads,
        "load_average_before": load_before,
        "gallery": len(kept),
        "real_photos": len(known),
        "distractors": len(padding),
        "detectors": sorted(detectors),
        "gallery_build_s": round(build_s, 1),
        "queries": len(queries),
        "answer_s": _stats(answer_s),
    }
    if served:
        result["served_s"] = _stats(_served_seconds(demo, queries))
    result["load_average_after"] = [round(v, 1) for v in os.getloadavg()]
    return result


def _served_seconds(demo, queries: list[Path]) -> list[float]:
    """Round-trip seconds of each query through the app, one request at a time."""
    from gradio_client import Client, handle_file

    from utils.demo.app import build_app, launch

    blocks = build_app(demo)
    _, url, _ = launch(blocks, demo, None, block=False, quiet=True)
    try:
        client = Client(url, verbose=False)
        client.predict(handle_file(str(queries[0])), api_name="/recognize")  # warm-up
        seconds = []
        for query in queries:
            start = time.perf_counter()
            client.predict(handle_file(str(query)), api_name="/recognize")
            seconds.append(time.perf_counter() - start)
    finally:
        blocks.close()
    return seconds


def print_demo(result: dict) -> None:
    """The figures of `bench_demo`, as text."""
    print(
        f"{result['cpus']} CPUs, {result['threads']} thread(s) per answer, load average "
        f"{result['load_average_before']} before, {result['load_average_after']} after; "
        f"gallery {result['gallery']} photos "
        f"({result['real_photos']} real, {result['distractors']} distractors), built in "
        f"{result['gallery_build_s']} s; detectors: {', '.join(result['detectors']) or 'none'}"
    )
    for key in ("answer_s", "served_s"):
        if key in result:
            s = result[key]
            print(
                f"{key[:-2]:<7} {result['queries']} queries: mean {s['mean']:.2f} s, median "
                f"{s['median']:.2f} s, p95 {s['p95']:.2f} s, max {s['max']:.2f} s"
            )
