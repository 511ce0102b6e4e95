"""How notebook 08 should rank real photos: its choices measured on ../shared/gldv2-sample.

    .venv/bin/python -m utils gldv2sample --part all --cache outputs/gldv2-sample.index
    .venv/bin/python scripts/study_08_on_gldv2_sample.py \
        --checkpoint outputs/gldv2-sample/04_train_effnet-lite2-imagenet/best.pt

The first command caches the frozen descriptor and RootSIFT features of every photo; this one
adds the trained network's embeddings and the ImageNet landmark mass of the test photos, then
ranks the 721 test photos with `utils.inference.ranking.rank` (08's own ranking) for

1. each descriptor (pretrained, trained, both at several weights) x whitening x k x confidence
   x RootSIFT verification: the setting of best GAP on 08's tune part (`tuning.tune_part`),
   reported on the tune part, the check part and the whole, beside each descriptor's nearest
   neighbour (k 1, no whitening, no verification);
2. for the chosen descriptor and setting, each non-landmark penalty (none; 1 - the ImageNet
   landmark mass at weights 0.25 to 2; the mean cosine to ``--non-landmarks`` photos) and the
   RootSIFT local votes switched the other way: GAP and
   how it orders right answers against photos of places absent from train, non-landmarks and
   wrong answers (AUROC), and how many of each rank among the first M (M = landmark photos).

Prints Markdown tables; nothing is written but a cache of the embeddings and masses under
``--cache``.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from utils.data.images import load_image
from utils.inference import tuning
from utils.inference.descriptors import combine
from utils.inference.ranking import RankSettings, local_votes, non_landmark_penalty, rank
from utils.metrics import NO_LANDMARK, gap
from utils.retrieval.calibration import FLOOR_QUANTILE, random_pairs
from utils.retrieval.gallery import read_competition_gallery
from utils.retrieval.gldv2sample import described, read_queries
from utils.retrieval.knn import fit_whitening
from utils.retrieval.realphotos import shared_descriptor
from utils.retrieval.rerank import match_pair

DEPTH = 15  # neighbours searched and verified per query (08's RERANK_TOP)


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a positive scores above a negative), ties half (Mann-Whitney)."""
    if not len(positive) or not len(negative):
        return float("nan")
    ranks = pd.Series(np.concatenate([positive, negative])).rank().to_numpy()
    top = ranks[: len(positive)].sum() - len(positive) * (len(positive) + 1) / 2
    return float(top / (len(positive) * len(negative)))


def cached(path: Path, compute):
    if path.is_file():
        return np.load(path)
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, value)
    return value


def embed_files(checkpoint: str, paths) -> np.ndarray:
    from utils.retrieval.index import checkpoint_embedder

    embedder = checkpoint_embedder(checkpoint)
    out = [embedder([load_image(p) for p in paths[i : i + 64]]) for i in range(0, len(paths), 64)]
    rows = np.concatenate(out)
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def imagenet_mass(paths) -> np.ndarray:
    from utils.ood import load_detector

    detector = load_detector("imagenet", "cpu")
    return np.concatenate(
        [
            detector.score([load_image(p) for p in paths[i : i + 32]])
            for i in range(0, len(paths), 32)
        ]
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", type=Path, default=Path("../shared/gldv2-sample"))
    p.add_argument("--cache", type=Path, default=Path("outputs/gldv2-sample.index"))
    p.add_argument("--checkpoint", required=True, help="08's trained network (04's Lite2 repeat)")
    p.add_argument("--weights", default="0.5,0.75,0.85,0.9", help="pretrained weights of 'both'")
    p.add_argument(
        "--non-landmarks",
        type=Path,
        default=Path("../shared/real-photos"),
        help="folder of real-photos (its manifest's non_landmark photos); absent: skipped",
    )
    p.add_argument("--use", default="both 0.85", help="descriptor of the penalty table")
    args = p.parse_args()

    gallery = read_competition_gallery(args.data_root)
    queries = read_queries(args.data_root)
    g_pre, g_kept, g_feat = described(gallery.paths, args.cache / "gallery", True)
    q_pre, q_kept, q_feat = described(list(queries["path"]), args.cache / "queries", True)
    assert len(g_kept) == len(gallery.paths) and len(q_kept) == len(queries), "unreadable photos"
    labels = np.array([int(x) for x in gallery.labels])
    truth = np.array([int(t) if t else NO_LANDMARK for t in queries["truth"]])
    known = np.isin(truth, labels)
    kind = np.where(known, "known", np.where(queries["place"] == "non_landmark", "non", "absent"))
    tune = tuning.tune_part(list(queries["id"]))
    study = args.cache / "study08"
    g_tr = cached(
        study / "gallery_trained.npy", lambda: embed_files(args.checkpoint, gallery.paths)
    )
    q_tr = cached(
        study / "queries_trained.npy", lambda: embed_files(args.checkpoint, list(queries["path"]))
    )
    mass = cached(study / "queries_mass.npy", lambda: imagenet_mass(list(queries["path"])))

    floor = float(
        np.quantile(
            [match_pair(g_feat[i], g_feat[j]).inliers for i, j in random_pairs(labels)],
            FLOOR_QUANTILE,
        )
    )
    matches: dict[tuple[int, int], int] = {}

    def searched(g, q, whiten):
        plain_all = q @ g.T
        space = plain_all
        if whiten:
            w, _ = fit_whitening(g, 256, 0.1, 2.0)
            space = w.apply(q) @ w.apply(g).T
        idx = np.argsort(-space, axis=1, kind="stable")[:, :DEPTH]
        cos = np.take_along_axis(space, idx, 1)
        plain = np.take_along_axis(plain_all, idx, 1)
        inl = np.zeros(idx.shape, np.int64)
        for qi, j in itertools.product(range(len(idx)), range(DEPTH)):
            key = (qi, int(idx[qi, j]))
            if key not in matches:
                matches[key] = match_pair(q_feat[qi], g_feat[key[1]]).inliers
            inl[qi, j] = matches[key]
        return cos, idx, plain, local_votes(inl, floor)

    def figures(landmarks, confidence):
        out = {}
        for name, m in (("tune", tune), ("check", ~tune), ("whole", np.ones_like(tune))):
            s = tuning.scores(
                landmarks[m], confidence[m], truth[m], known[m], intervals=name == "whole"
            )
            out[name] = s
        return out

    descriptors = {"pretrained": (g_pre, q_pre), "trained": (g_tr, q_tr)}
    for a in [float(x) for x in args.weights.split(",")]:
        descriptors[f"both {a}"] = (combine(g_pre, g_tr, a), combine(q_pre, q_tr, a))
    print(
        f"noise floor {floor:.0f} inliers; tune part {int(tune.sum())} ids, check {int((~tune).sum())}\n"
    )
    print(
        "| descriptor | chosen on tune: whiten, k, confidence, verify | GAP tune | GAP check | GAP whole (95%) | accuracy whole | nearest neighbour: GAP tune / check / whole |"
    )
    print("|---|---|---|---|---|---|---|")
    chosen_all = {}
    for name, (g, q) in descriptors.items():
        runs = {w: searched(g, q, w) for w in (False, True)}
        best, best_gap = None, -1.0
        for whiten, k, conf, verify in itertools.product(
            (False, True), (1, 3, 5), ("score", "nearest"), (0.0, 1.0)
        ):
            cos, idx, plain, votes = runs[whiten]
            agg = "top1" if k == 1 else "sum"
            settings = RankSettings(k, agg, 0, 0.0, whiten=whiten, confidence=conf, verify=verify)
            lm, cf = rank(cos, idx, labels, np.zeros(len(q)), settings, None, plain, votes)
            g_tune = gap(lm[tune], cf[tune], truth[tune])
            if g_tune > best_gap:
                best, best_gap = (settings, lm, cf), g_tune
        settings, lm, cf = best
        f = figures(lm, cf)
        cos, idx, plain, votes = runs[False]
        nn = figures(*rank(cos, idx, labels, np.zeros(len(q)), RankSettings(1), None, plain))
        lo, hi = f["whole"]["gap_interval"]
        print(
            f"| {name} | {settings.whiten}, {settings.k}, {settings.confidence}, {settings.verify:.0f} | "
            f"{f['tune']['gap']:.3f} | {f['check']['gap']:.3f} | {f['whole']['gap']:.3f} ({lo:.3f}-{hi:.3f}) | "
            f"{f['whole']['correct_known']}/{f['whole']['known_landmark_photos']} | "
            f"{nn['tune']['gap']:.3f} / {nn['check']['gap']:.3f} / {nn['whole']['gap']:.3f} |"
        )
        chosen_all[name] = (settings, runs)

    best_name = args.use if args.use in chosen_all else "pretrained"
    settings, runs = chosen_all[best_name]
    cos, idx, plain, votes = runs[settings.whiten]
    penalties = [("none", np.zeros(len(truth)), 0.0)]
    penalties += [(f"1 - ImageNet mass, w {w}", 1 - mass, w) for w in (0.25, 0.5, 1.0, 2.0)]
    manifest = args.non_landmarks / "manifest.csv"
    if manifest.is_file():
        files = pd.read_csv(manifest)
        files = [
            args.non_landmarks / f for f in files.loc[files["label"] == "non_landmark", "file"]
        ]
        nl = cached(
            study / "non_landmarks.npy", lambda: shared_descriptor()([load_image(f) for f in files])
        )
        for k, w in itertools.product((1, 5), (0.25, 0.5, 1.0)):
            penalties.append(
                (
                    f"{len(files)} non-landmark photos, k {k}, w {w}",
                    non_landmark_penalty(q_pre, nl, k),
                    w,
                )
            )
    print(f"\n{best_name}, {settings}\n")
    print(
        "| penalty | GAP tune | GAP check | GAP whole | AUROC right vs absent places | vs non-landmarks | vs wrong answers | among the first M: absent / non-landmark / wrong |"
    )
    print("|---|---|---|---|---|---|---|---|")
    m = int((truth != NO_LANDMARK).sum())
    flip = 0.0 if settings.verify else 1.0  # the chosen setting with verification toggled
    penalties.append((f"none, RootSIFT local votes {'off' if flip == 0 else 'on'}", None, 0.0))
    for name, penalty, w in penalties:
        s = RankSettings(
            settings.k,
            settings.aggregation,
            1 if w else 0,
            w,
            whiten=settings.whiten,
            confidence=settings.confidence,
            verify=settings.verify if penalty is not None else flip,
        )
        penalty = np.zeros(len(truth)) if penalty is None else penalty
        lm, cf = rank(cos, idx, labels, penalty, s, None, plain, votes)
        f = figures(lm, cf)
        right = known & (lm == truth)
        top = np.argsort(-cf, kind="stable")[:m]
        print(
            f"| {name} | {f['tune']['gap']:.3f} | {f['check']['gap']:.3f} | {f['whole']['gap']:.3f} | "
            f"{auroc(cf[right], cf[kind == 'absent']):.3f} | {auroc(cf[right], cf[kind == 'non']):.3f} | "
            f"{auroc(cf[right], cf[known & ~right]):.3f} | {(kind[top] == 'absent').sum()} / "
            f"{(kind[top] == 'non').sum()} / {(known[top] & ~right[top]).sum()} |"
        )


if __name__ == "__main__":
    main()
