"""Kaggle's folders, ``/kaggle/input`` and ``/kaggle/working``, or where a dry run emulates them.

`utils.kernels.dryrun` runs the kernels on this machine with ``$LANDMARK_KAGGLE_ROOT``
pointing at an emulated ``/kaggle``; everything that looks in Kaggle's folders asks here, so
the dry run takes the same code paths as Kaggle. Read at call time, never at import.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

KAGGLE = Path("/kaggle")
ROOT_ENV = "LANDMARK_KAGGLE_ROOT"


def kaggle_path(part: str, environ: Mapping[str, str] | None = None) -> Path:
    """``/kaggle/<part>`` (``input`` or ``working``), under ``$LANDMARK_KAGGLE_ROOT`` if set."""
    environ = os.environ if environ is None else environ
    return Path(environ.get(ROOT_ENV) or KAGGLE) / part
