"""Which recipe the leaderboard model should train with on real photos: measured on gldv2-sample.

    .venv/bin/python -m utils gldv2sample --part all --cache outputs/gldv2-sample.index
    .venv/bin/python scripts/study_leaderboard_recipe.py \
        --manifests outputs/gldv2-sample/02_preprocess/manifests-all

The first command caches the frozen descriptor of every photo (08's, `shared_descriptor`); the
second trains EfficientNet-Lite2 from ImageNet with each recipe of `RECIPES` (04's leaderboard
repeat otherwise: 8 epochs, AdamW 1e-3, batch 16, one warm-up epoch, label smoothing 0.1,
pipeline 2) on 02's all-landmark manifests, under ``--out/NAME`` (a finished run is reused), then
embeds the 1,863 photos with 08's `trained_vectors` (the checkpoint's eval transform) and
ranks the 721 test photos with 08's `rank` (whitened, K 3 summed, the nearest photo's cosine):

- the run's validation accuracy and GAP (its best epoch), chosen on by the training itself;
- 08's tune part (`utils.inference.tuning.tune_part`): GAP of the network's nearest train photo,
  and of the network searched with the frozen descriptor at each ``--weights`` (the frozen
  descriptor's share of the cosine);
- with ``--check``, the check part and the whole too (read once, after choosing).

Prints a Markdown table; writes only the runs and their embeddings under ``--out``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from utils.data.augment import eval_transform
from utils.inference import tuning
from utils.inference.budget import TimeBudget
from utils.inference.descriptors import combine, trained_vectors
from utils.inference.ranking import RankSettings, rank
from utils.metrics import NO_LANDMARK, gap
from utils.retrieval.gallery import read_competition_gallery
from utils.retrieval.gldv2sample import described, read_queries
from utils.retrieval.knn import fit_whitening
from utils.training import train as trainer
from utils.training.checkpoint import load_trained
from utils.training.devices import resolve_device

DEPTH = 15  # neighbours searched per query (08's RERANK_TOP)
# name -> what the recipe changes in 04's leaderboard repeat
RECIPES = {
    "96px-ce-avg": {"image_size": 96},
    "128px-subcenter-gem": {"image_size": 128, "head": "subcenter", "pooling": "gem"},
    "128px-ce-avg": {"image_size": 128},
    "192px-ce-avg": {"image_size": 192},
}


def train_recipe(name: str, changes: dict, args) -> Path:
    """``best.pt`` of the recipe's run, trained unless it already finished."""
    out = args.out / name
    if (out / "metrics.json").is_file() and (out / "best.pt").is_file():
        return out / "best.pt"
    config = trainer.TrainConfig(
        data_root=str(args.data_root),
        manifest_dir=str(args.manifests),
        output_dir=str(out),
        model="efficientnet-lite2",
        pretrained=True,
        pipeline=2,
        epochs=8,
        batch_size=16,
        lr=0.001,
        warmup_epochs=1.0,
        label_smoothing=0.1,
        workers=0,
        cache=True,
        wandb_mode="disabled",
        **changes,
    )
    trainer.train(config)
    return out / "best.pt"


def embedded(checkpoint: Path, paths: list[Path]) -> np.ndarray:
    """Unit embeddings ``(N, D)`` of ``paths`` by 08's `trained_vectors`, cached beside the run."""
    cache = checkpoint.parent / "gldv2-sample-embeddings.npy"
    if cache.is_file():
        return np.load(cache)
    device = resolve_device("auto")
    model, _, config = load_trained(checkpoint, device)
    transform = eval_transform(config["image_size"], config["pipeline"])
    rows, kept, _, _ = trained_vectors(model, transform, device)(paths, TimeBudget(), "embed")
    if len(kept) != len(paths):
        raise SystemExit(f"{checkpoint}: {len(paths) - len(kept)} photos could not be embedded")
    np.save(cache, rows)
    return rows


def ranked(gallery: np.ndarray, queries: np.ndarray, labels: np.ndarray, nearest: bool):
    """``(landmarks, confidences)`` of 08's `rank`: nearest photo, or whitened K 3 nearest."""
    plain = queries @ gallery.T
    space = plain
    if not nearest:
        whitening, _ = fit_whitening(gallery, 256, 0.1, 2.0)
        space = whitening.apply(queries) @ whitening.apply(gallery).T
    idx = np.argsort(-space, axis=1, kind="stable")[:, :DEPTH]
    settings = (
        RankSettings(1)
        if nearest
        else RankSettings(3, "sum", 0, 0.0, whiten=True, confidence="nearest")
    )
    return rank(
        np.take_along_axis(space, idx, 1),
        idx,
        labels,
        np.zeros(len(queries)),
        settings,
        None,
        np.take_along_axis(plain, idx, 1),
    )


def main() -> None:
    """Train the missing recipes, embed, print the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", type=Path, default=Path("../shared/gldv2-sample"))
    p.add_argument("--manifests", type=Path, required=True, help="02's manifests-all folder")
    p.add_argument("--cache", type=Path, default=Path("outputs/gldv2-sample.index"))
    p.add_argument("--out", type=Path, default=Path("outputs/leaderboard-recipes"))
    p.add_argument("--weights", default="0.5,0.7,0.85", help="frozen shares of 'both'")
    p.add_argument("--recipes", default=",".join(RECIPES), help="names of RECIPES to run")
    p.add_argument("--check", action="store_true", help="also the check part and the whole")
    args = p.parse_args()

    gallery = read_competition_gallery(args.data_root)
    queries = read_queries(args.data_root)
    paths = list(gallery.paths) + list(queries["path"])
    g_pre, g_kept, _ = described(gallery.paths, args.cache / "gallery", True)
    q_pre, q_kept, _ = described(list(queries["path"]), args.cache / "queries", True)
    if len(g_kept) != len(gallery.paths) or len(q_kept) != len(queries):
        raise SystemExit("some photos could not be read; this study needs them all")
    labels = np.array([int(x) for x in gallery.labels])
    truth = np.array([int(t) if t else NO_LANDMARK for t in queries["truth"]])
    tune = tuning.tune_part(list(queries["id"]))
    parts = {"tune": tune}
    if args.check:
        parts |= {"check": ~tune, "whole": np.ones_like(tune)}
    weights = [float(w) for w in args.weights.split(",")]

    def gaps(found) -> str:
        return " / ".join(f"{gap(found[0][m], found[1][m], truth[m]):.3f}" for m in parts.values())

    names = " / ".join(parts)
    print(
        f"| recipe | val accuracy / GAP (best epoch) | nearest neighbour GAP, {names} | "
        + " | ".join(f"both {w}, {names}" for w in weights)
        + " |"
    )
    print("|---|---|---|" + "---|" * len(weights))
    print(
        f"| frozen descriptor (08's) | - | "
        f"{gaps(ranked(g_pre, q_pre, labels, True))} |" + " - |" * len(weights)
    )
    for name in args.recipes.split(","):
        checkpoint = train_recipe(name, RECIPES[name], args)
        history = json.loads((checkpoint.parent / "metrics.json").read_text())["history"]
        best = max(history, key=lambda row: row["val_gap"])
        rows = embedded(checkpoint, paths)
        g_tr, q_tr = rows[: len(gallery.paths)], rows[len(gallery.paths) :]
        line = (
            f"| {name} | {best['val_accuracy']:.3f} / {best['val_gap']:.3f} ({best['epoch']}) | "
            f"{gaps(ranked(g_tr, q_tr, labels, True))} |"
        )
        for w in weights:
            found = ranked(combine(g_pre, g_tr, w), combine(q_pre, q_tr, w), labels, False)
            line += f" {gaps(found)} |"
        print(line, flush=True)


if __name__ == "__main__":
    main()
