"""Notebook 07 with no non-landmark photo: save the detector that needs none, and say so.

The competition ships no non-landmark photos (``train.csv``, ``sample_submission.csv``,
``train/``, ``test/``). Without a dataset of them attached, the trained detectors (binary
classifier, ODIN, matching) can neither be trained nor given a threshold, but the ImageNet
detector (`utils.ood.imagenet`) needs neither: its classes and threshold were chosen on the
tune part of the real photos. `write_untrained` saves it as ``detector.pt`` (what notebook 08
reads) and ``detector_imagenet.pt``, and writes ``detectors.json`` and ``protocol.json`` with
no test figures, because there is nothing to test it on.
"""

from __future__ import annotations

import json
from pathlib import Path

from utils.ood import imagenet


def write_untrained(out: str | Path, device: str, searched: list[str]) -> dict:
    """Save the ImageNet detector under ``out``; return ``detectors.json``'s content.

    Args:
        out: notebook 07's output folder.
        device: where the detector's network runs when it is used.
        searched: the folders looked in for non-landmark photos (for the note).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    detector = imagenet.default_detector(device)
    for name in ("detector_imagenet.pt", "detector.pt"):
        detector.save(out / name)
    note = (
        f"no non-landmark photos under {', '.join(searched)}: only the ImageNet detector, which "
        "needs none, was saved (threshold chosen on the tune part of the real photos); attach a "
        "dataset of non-landmark photos (Caltech101, CelebA or SUN397 in their usual layouts) "
        "to train and compare the others"
    )
    results = {"imagenet": {**detector.describe(), "evaluated": False, "note": note}}
    (out / "detectors.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    protocol = {"log": [note], "chosen": "imagenet", "non_landmark_photos": 0}
    (out / "protocol.json").write_text(json.dumps(protocol, indent=2), encoding="utf-8")
    return results
