"""Kaggle submission files: write, read, validate, score.

A submission is ``id,landmarks`` with one row per test id; ``landmarks`` is
``"<landmark_id> <confidence>"`` (an integer and a finite number) or empty for no prediction.
A solution is ``id,landmarks`` with the true landmark ids space-separated, empty for a photo
without a landmark (``test_solution.csv`` of the mini dataset).

A scored test set splits in two parts by `tune_part`: settings are chosen on ``tune`` (notebook
08's ranking, notebook 07's detectors) and reported on ``check``. Each id falls in a part by a
hash of the id alone (``sha256("08-tune:" + id)``, first byte below 128: tune), fixed in code
and independent of the order or the other ids.

CLI: ``python -m utils validate SUBMISSION.csv --sample SAMPLE.csv`` prints one line
per problem and exits 1 when there is any.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from utils.data.gldv2 import SUBMISSION_COLUMNS, DataContractError, read_csv_checked
from utils.metrics import NO_LANDMARK, gap_from_correct

MAX_LINES = 20  # problems listed per kind before "... and N more"
TUNE_SALT = "08-tune:"  # `tune_part`'s hash prefix


def tune_part(ids: Sequence[str]) -> np.ndarray:
    """``(N,)`` True where a test id is in the tune part (see the module docstring)."""
    return np.array(
        [hashlib.sha256((TUNE_SALT + str(i)).encode()).digest()[0] < 128 for i in ids], bool
    )


class SubmissionError(ValueError):
    """A submission or solution file that breaks the format; the message lists the problems."""


def format_prediction(landmark_id: int | None, confidence: float) -> str:
    """``"<landmark_id> <confidence>"``, or ``""`` for no prediction (None or -1)."""
    if landmark_id is None or int(landmark_id) == NO_LANDMARK:
        return ""
    if not math.isfinite(confidence):
        raise ValueError(f"confidence must be finite, got {confidence} for landmark {landmark_id}")
    return f"{int(landmark_id)} {confidence:.6g}"


def write_submission(
    path: str | Path,
    ids: Sequence[str],
    landmarks: Sequence[int | None],
    confidences: Sequence[float],
) -> Path:
    """Write ``id,landmarks``; a landmark of None or -1 writes an empty prediction."""
    if not len(ids) == len(landmarks) == len(confidences):
        raise ValueError("ids, landmarks and confidences must have the same length")
    values = [format_prediction(lm, float(c)) for lm, c in zip(landmarks, confidences, strict=True)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"id": list(ids), "landmarks": values}).to_csv(
        path, index=False, lineterminator="\n"
    )
    return path


def parse_prediction(value: str) -> tuple[int, float]:
    """``(landmark_id, confidence)`` of a non-empty value; ValueError says what is wrong."""
    tokens = value.split()
    if len(tokens) != 2:
        raise ValueError(f"expected 'landmark_id confidence' (2 tokens), got {len(tokens)}")
    try:
        landmark = int(tokens[0])
    except ValueError:
        raise ValueError(f"landmark id {tokens[0]!r} is not an integer") from None
    try:
        confidence = float(tokens[1])
    except ValueError:
        raise ValueError(f"confidence {tokens[1]!r} is not a number") from None
    if not math.isfinite(confidence):
        raise ValueError(f"confidence {tokens[1]!r} is not finite")
    return landmark, confidence


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:5])
    return shown + (f", ... ({len(items)} in all)" if len(items) > 5 else "")


def _problems(path: Path, frame: pd.DataFrame, expected: Sequence[str] | None) -> list[str]:
    problems = []
    duplicated = frame.loc[frame["id"].duplicated(), "id"].unique().tolist()
    if duplicated:
        problems.append(
            f"{path}: {len(duplicated)} id(s) appear more than once: {_listed(duplicated)}"
        )
    if expected is not None:
        present, wanted = set(frame["id"]), set(expected)
        missing = [i for i in expected if i not in present]
        extra = sorted(set(frame["id"]) - wanted)
        if missing:
            problems.append(f"{path}: {len(missing)} test id(s) have no row: {_listed(missing)}")
        if extra:
            problems.append(f"{path}: {len(extra)} id(s) are not test ids: {_listed(extra)}")
    bad = []
    for line, (image_id, value) in enumerate(zip(frame["id"], frame["landmarks"], strict=True), 2):
        if str(value).strip():
            try:
                parse_prediction(str(value))
            except ValueError as err:
                bad.append(f"{path} line {line} (id {image_id}): {err}: {value!r}")
    problems += bad[:MAX_LINES]
    if len(bad) > MAX_LINES:
        problems.append(f"{path}: ... and {len(bad) - MAX_LINES} more malformed values")
    return problems


def _read_frame(path: str | Path) -> tuple[Path, pd.DataFrame]:
    path = Path(path)
    try:
        frame = read_csv_checked(path, SUBMISSION_COLUMNS, dtype=str)
    except DataContractError as err:
        raise SubmissionError(str(err)) from err
    return path, frame.fillna("")


def validate_submission(
    path: str | Path, sample: str | Path | None = None, test_ids: Sequence[str] | None = None
) -> list[str]:
    """Problems of a submission, one line each (empty list: valid).

    The expected ids come from ``test_ids``, else from ``sample`` (``sample_submission.csv``).
    """
    try:
        path, frame = _read_frame(path)
        if test_ids is None and sample is not None:
            test_ids = _read_frame(sample)[1]["id"].tolist()
    except SubmissionError as err:
        return [str(err)]
    return _problems(path, frame, test_ids)


def read_submission(path: str | Path) -> pd.DataFrame:
    """``id``, ``landmark_id`` (-1: none), ``confidence`` (NaN: none); raises SubmissionError."""
    path, frame = _read_frame(path)
    problems = _problems(path, frame, None)
    if problems:
        raise SubmissionError("\n".join(problems))
    parsed = [
        parse_prediction(v) if v.strip() else (NO_LANDMARK, math.nan) for v in frame.landmarks
    ]
    landmark, confidence = zip(*parsed, strict=True) if parsed else ((), ())
    return pd.DataFrame(
        {
            "id": frame["id"].tolist(),
            "landmark_id": np.asarray(landmark, dtype=np.int64),
            "confidence": np.asarray(confidence, dtype=np.float64),
        }
    )


def read_solution(path: str | Path) -> pd.DataFrame:
    """``id`` and ``truth`` (a frozenset of landmark ids; empty: not a landmark)."""
    path, frame = _read_frame(path)
    truths = []
    for line, value in enumerate(frame["landmarks"], 2):
        try:
            truths.append(frozenset(int(token) for token in value.split()))
        except ValueError:
            raise SubmissionError(
                f"{path} line {line}: true landmark ids must be integers, got {value!r}"
            ) from None
    if frame["id"].duplicated().any():
        raise SubmissionError(f"{path}: ids appear more than once")
    return pd.DataFrame({"id": frame["id"].tolist(), "truth": truths})


def score(
    solution: pd.DataFrame, submission: pd.DataFrame, ignore_non_landmarks: bool = False
) -> dict:
    """GAP and top-1 accuracy (over landmark queries) of a submission against a solution.

    Solution ids without a submission row count as no prediction; submission rows for ids
    outside the solution are ignored. Both are reported in ``warnings``.
    """
    merged = solution.merge(submission, on="id", how="left")
    warnings = []
    unanswered = int(merged["landmark_id"].isna().sum())
    if unanswered:
        warnings.append(f"{unanswered} solution id(s) have no submission row (no prediction)")
    extra = len(set(submission["id"]) - set(solution["id"]))
    if extra:
        warnings.append(f"{extra} submission id(s) are not in the solution (ignored)")
    predicted = merged["landmark_id"].fillna(NO_LANDMARK).astype(np.int64).to_numpy()
    confidence = merged["confidence"].fillna(0.0).to_numpy()
    truth = merged["truth"].tolist()
    correct = np.array([p in t for p, t in zip(predicted, truth, strict=True)], dtype=bool)
    has_prediction = predicted != NO_LANDMARK
    is_landmark = np.array([len(t) > 0 for t in truth], dtype=bool)
    return {
        "gap": gap_from_correct(
            correct & has_prediction, confidence, has_prediction, is_landmark, ignore_non_landmarks
        ),
        "accuracy": float(correct[is_landmark].mean()) if is_landmark.any() else float("nan"),
        "queries": len(merged),
        "landmark_queries": int(is_landmark.sum()),
        "predictions": int(has_prediction.sum()),
        "warnings": warnings,
    }
