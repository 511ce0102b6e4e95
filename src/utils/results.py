"""The results report of a pipeline run: ``outputs/RUN/results.md``.

Filled from the metrics files the notebooks leave in the run folder (nothing is typed in):

- the data: ``run.json`` (`RUN_FILE`, the runner's parameters): the data root and the top-N,
  with how it was chosen (a real folder with fewer landmarks than the report's 100 that can be
  split gets all of them, `utils.data.manifests.adapted_top`);
- Table 3 (classification and retrieval on the manifest's test split): ``test_metrics.json``
  of 03, 04 (and the pipeline's repeats of it) and 06 with their ``config.json``, whose
  ``pretrained`` gives the weights column (ImageNet or scratch), and the rows of 05's and 06's
  ``test_results.json``; a network trained on every landmark (an all-landmark manifest,
  ``top`` 0) gets a second row on the test ids of the run's top-N manifest (those of the first
  04 folder), read from its ``test_predictions.csv``, so that its row compares with the others;
- Table 4 (non-landmark detectors): ``07_*/detectors.json`` when notebook 07 exists;
- the submission: ``08_*/submission_report.json`` (GAP over the whole test set, non-landmark
  photos included, when the data root ships ``test_solution.csv``; with the settings chosen on
  the tune part of the test ids and the figures of the check part, and the ceiling: the share
  of landmark photos whose landmark is in the gallery);
- the figures (``*.png``) of every notebook, linked.

Beside our numbers, a separate column holds the report's own figures where the report gives them
(its Table 4); "—" where it does not or where this run did not measure a value.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from utils.metrics import gap

# The report's Table 4: accuracy, precision, recall of each detector.
REPORT_TABLE4 = {
    "mobilenet": (0.89, 0.85, 0.95),
    "odin": (0.54, 0.54, 0.55),
    "matching": (0.96, 0.96, 0.96),
}
DASH = "—"
RUN_FILE = "run.json"  # the parameters the runner offered the notebooks (`utils.pipeline`)


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _fmt(value) -> str:
    return DASH if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _folder(run: Path, number: str) -> Path | None:
    found = sorted(p for p in run.glob(f"{number}_*") if p.is_dir())
    return found[0] if found else None


def _weights(config: dict) -> str:
    """Where a network's weights started: ImageNet or scratch ("—" without its config)."""
    if "pretrained" not in config:
        return DASH
    return "ImageNet" if config["pretrained"] else "scratch"


def _manifest_summary(config: dict) -> dict:
    folder = config.get("manifest_dir")
    return (_read(Path(folder) / "summary.json") if folder else None) or {}


def _classes(config: dict) -> str:
    summary = _manifest_summary(config)
    if "num_classes" not in summary:
        return DASH
    return (
        f"all {summary['num_classes']}" if summary.get("top") == 0 else str(summary["num_classes"])
    )


def _on_top_n(folder: Path, top_n_config: dict) -> tuple[float, float, int] | None:
    """Accuracy, GAP and count of a network's test predictions on the top-N test ids."""
    predictions, manifest = folder / "test_predictions.csv", top_n_config.get("manifest_dir")
    if not predictions.is_file() or not manifest or not (Path(manifest) / "test.csv").is_file():
        return None
    ids = set(pd.read_csv(Path(manifest) / "test.csv", dtype={"id": str})["id"])
    frame = pd.read_csv(predictions, dtype={"id": str})
    frame = frame[frame["id"].isin(ids)]
    if frame.empty:
        return None
    truth, predicted = frame["landmark_id"].to_numpy(), frame["predicted"].to_numpy()
    accuracy = float((truth == predicted).mean())
    return accuracy, gap(predicted, frame["confidence"].to_numpy(), truth), len(frame)


def table3_rows(run: Path) -> list[list[str]]:
    """``[model, weights, classes, pipeline, method, accuracy, GAP, GAP@20]`` of each result.

    Classifiers: ``test_metrics.json`` of every 03, 04 and 06 folder (the pipeline's repeats,
    e.g. ``04_train_effnet-lite2-imagenet``, too); retrieval: the rows of 05's and 06's
    ``test_results.json`` (05 uses the network of the first 04 folder, the notebook's own).
    """
    rows = []
    first = _folder(run, "04")
    top_n_config = (_read(first / "config.json") if first else None) or {}
    for number in ("03", "04", "05", "06"):
        folders = sorted(p for p in run.glob(f"{number}_*") if p.is_dir())
        for folder in folders:
            trained = first if number == "05" else folder
            config = (_read(trained / "config.json") if trained else None) or {}
            model, pipeline = config.get("model", folder.name), _fmt(config.get("pipeline"))
            named = [model, _weights(config), _classes(config), pipeline]
            metrics = _read(folder / "test_metrics.json")
            if metrics:
                method = metrics.get("method", "classifier")
                values = (metrics.get("accuracy"), metrics.get("gap"), metrics.get("gap_at_20"))
                rows.append([*named, method, *(_fmt(v) for v in values)])
                subset = _on_top_n(folder, top_n_config)
                if _manifest_summary(config).get("top") == 0 and folder != first and subset:
                    top = _manifest_summary(top_n_config).get("num_classes", "N")
                    rows.append(
                        [*named, f"{method}, on the top-{top} test ids ({subset[2]})"]
                        + [_fmt(subset[0]), _fmt(subset[1]), DASH]
                    )
            for method, values in (_read(folder / "test_results.json") or {}).items():
                measured = (values.get("accuracy"), values.get("GAP"))
                rows.append([*named, method, *(_fmt(v) for v in measured), DASH])
    return rows


def table4_rows(run: Path) -> list[list[str]]:
    """A row per detector: accuracy, precision, recall, AUROC, AUROC per landmark kind, report.

    The AUROC has its 95% interval where 07 measured one. The kinds are
    `utils.ood.evaluate.auroc_by_landmark_kind`'s (known / other landmarks).
    """
    folder = _folder(run, "07")
    detectors = _read(folder / "detectors.json") if folder else None
    rows = []
    for name, values in (detectors or {}).items():
        report = REPORT_TABLE4.get(name)
        interval = values.get("auroc_interval")
        auroc = _fmt(values.get("auroc")) + (
            f" ({interval[0]:.2f}-{interval[1]:.2f})" if interval else ""
        )
        rows.append(
            [
                name,
                *(_fmt(values.get(key)) for key in ("accuracy", "precision", "recall")),
                auroc,
                " / ".join(
                    _fmt(values.get(f"auroc_{kind}_landmarks")) for kind in ("known", "other")
                ),
                " / ".join(f"{v:.2f}" for v in report) if report else DASH,
            ]
        )
    return rows


def by_source_rows(run: Path) -> tuple[list[list[str]], list[str]]:
    """Per detector, its test AUROC against each source of non-landmark photos, and the sources.

    From ``detectors.json``'s ``auroc_by_source`` (`utils.ood.evaluate.auroc_by_source`).
    """
    folder = _folder(run, "07")
    detectors = (_read(folder / "detectors.json") if folder else None) or {}
    sources = sorted({k for v in detectors.values() for k in v.get("auroc_by_source", {})})
    rows = [
        [name, *(_fmt(values.get("auroc_by_source", {}).get(k)) for k in sources)]
        for name, values in detectors.items()
        if values.get("auroc_by_source")
    ]
    return rows, sources


def table4_note(run: Path) -> list[str]:
    """What Table 4's test split was where 07 had no non-landmark photo to build it from.

    ``protocol.json``'s ``mode`` (`utils.ood.scored`).
    """
    folder = _folder(run, "07")
    protocol = (_read(folder / "protocol.json") if folder else None) or {}
    if protocol.get("mode") != "scored":
        return []
    return [
        "",
        "No non-landmark photos to train on: the detectors that need none were tuned on 08's tune "
        "part of the test set and measured on its check part (`test_solution.csv`); a landmark "
        "is a photo of a landmark of `train.csv`, photos of other places count as non-landmarks. "
        "Known / other: of the classifier's classes or not.",
    ]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def render(run: Path) -> str:
    """The Markdown text of ``results.md`` for a run folder."""
    run = Path(run)
    lines = [f"# Results of `{run.name}`", ""]
    parameters = _read(run / RUN_FILE)
    if parameters:
        lines += [
            f"Data: `{parameters.get('DATA_ROOT', DASH)}`; landmarks: "
            f"{parameters.get('TOP_NOTE') or 'top ' + str(parameters.get('TOP', DASH))}.",
            "",
        ]
    lines += ["## Table 3: landmark classification and retrieval (test split)", ""]
    rows = table3_rows(run)
    header = ["model", "weights", "classes", "pipeline", "method", "accuracy", "GAP", "GAP@20"]
    header.append("report")
    lines += _table(header, [[*r, DASH] for r in rows]) if rows else ["Not measured in this run."]
    lines += ["", "## Table 4: non-landmark detection (test split)", ""]
    rows = table4_rows(run)
    header = ["detector", "accuracy", "precision", "recall", "AUROC"]
    header += ["AUROC: known / other landmarks", "report: acc / prec / rec"]
    lines += _table(header, rows) if rows else ["Notebook 07 did not run in this run."]
    lines += table4_note(run)
    rows, sources = by_source_rows(run)
    if rows:
        lines += ["", "AUROC of the landmark photos against each kind of non-landmark photo:", ""]
        lines += _table(["detector", *sources], rows)
    folder = _folder(run, "08")
    report = _read(folder / "submission_report.json") if folder else None
    lines += ["", "## Submission", ""]
    if report:
        lines += submission_lines(report)
    else:
        lines.append("Notebook 08 did not run in this run.")
    figures = sorted(run.glob("*/*.png"))
    lines += ["", "## Figures", ""]
    lines += [f"- [{p.parent.name}/{p.name}]({p.parent.name}/{p.name})" for p in figures] or [
        "None."
    ]
    return "\n".join(lines) + "\n"


def submission_lines(report: dict) -> list[str]:
    """The submission section: what was written, its score, its tuning (08's report)."""
    score = report.get("score") or {}
    descriptor = report.get("descriptor")
    method = f"`{report.get('method')}`" + (
        f" ({descriptor} descriptor)" if descriptor and report.get("method") == "retrieval" else ""
    )
    lines = [
        f"{method} on {report.get('rows')} test ids ({report.get('mode')} "
        f"run): {report.get('predicted')} predictions, {len(report.get('unreadable', []))} "
        f"unreadable, {report.get('out_of_budget')} left out by the time budget, in "
        f"{_fmt(report.get('seconds'))} s.",
        f"GAP over the whole test set (non-landmark photos included): "
        f"{_fmt(score.get('gap'))}; accuracy over its landmark photos: "
        f"{_fmt(score.get('accuracy'))}."
        if score
        else "No solution file: not scored.",
    ]
    details = report.get("details") or {}
    tuned = details.get("tuning")
    if details.get("gallery"):
        g = details["gallery"]
        lines.append(
            f"Gallery: {g['images']} of the {g['listed']} images of the data root's "
            f"{g['source']} list ({g['missing']} missing, {g['unreadable']} unreadable)."
        )
    if tuned:
        chosen = ", ".join(f"{k} {v}" for k, v in tuned["chosen"].items())
        lines += ["", f"Chosen on the tune part ({tuned['grid']} settings tried): {chosen}.", ""]
        header = ["part", "ids", "GAP (95% interval)", "accuracy, gallery landmarks"]
        header += ["predicted", "confident non-landmarks", "ceiling"]
        rows = []
        baseline = (details.get("baseline") or {}).get("parts", {})
        labelled = list(tuned["parts"].items())
        labelled += [(f"{name}: baseline", part) for name, part in baseline.items()]
        for name, part in labelled:
            low, high = part.get("gap_interval", (None, None))
            a_low, a_high = part.get("accuracy_known_interval", (None, None))
            ceiling = part["known_landmark_photos"] / max(1, part["landmark_photos"])
            rows.append(
                [
                    name,
                    str(part["queries"]),
                    f"{_fmt(part['gap'])} ({_fmt(low)}-{_fmt(high)})",
                    f"{part['correct_known']}/{part['known_landmark_photos']} = "
                    f"{_fmt(part['accuracy_known'])} ({_fmt(a_low)}-{_fmt(a_high)})",
                    str(part["predicted"]),
                    f"{part['confident_non_landmarks']}/{part['non_landmark_photos']}",
                    _fmt(ceiling),
                ]
            )
        lines += _table(header, rows)
        if baseline:
            lines += [
                "",
                f"Baseline rows: {details['baseline']['name']} (its cosine as the confidence; "
                "nothing trained, nothing tuned), on the same parts.",
            ]
            difference = details["baseline"].get("difference") or {}
            if difference:
                lines.append(
                    "GAP of 08 minus the baseline's, paired bootstrap 95% interval (both scored "
                    "on the same resampled ids): "
                    + "; ".join(
                        f"{name} {d['gap']:+.3f} ({d['interval'][0]:+.3f} to "
                        f"{d['interval'][1]:+.3f})"
                        for name, d in difference.items()
                    )
                    + "."
                )
    return lines


def write_results(run: str | Path) -> Path:
    """Write ``RUN/results.md``; returns its path."""
    path = Path(run) / "results.md"
    path.write_text(render(Path(run)), encoding="utf-8")
    return path


def parser():
    """Options of the command."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m utils results", description=__doc__.split("\n")[0])
    p.add_argument("run", type=Path, help="run folder holding the notebooks' NN_name/ outputs")
    return p


def main(argv: list[str] | None = None) -> int:
    """Write RUN/results.md and print its path; 2 when RUN is not a folder."""
    import sys

    args = parser().parse_args(argv)
    if not args.run.is_dir():
        print(f"error: {args.run}: not a folder", file=sys.stderr)
        return 2
    print(write_results(args.run))
    return 0
