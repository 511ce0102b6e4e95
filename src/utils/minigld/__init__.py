"""The embedded mini dataset: a deterministic mini GLDv2 in the exact Kaggle layout.

`generator` writes the CSVs and photos; `render` draws each landmark's structure, `camera`
photographs it, `scenes` draws the non-landmark photos. The public entry points are
re-exported here: ``minigld.generate(out, profile, seed)``, ``minigld.ensure(...)``.
"""

from utils.minigld.generator import (
    PROFILES,
    ensure,
    generate,
    is_complete,
    main,
    parser,
    plan,
    profile_of,
    synthetic_name,
)

__all__ = [
    "PROFILES",
    "ensure",
    "generate",
    "is_complete",
    "main",
    "parser",
    "plan",
    "profile_of",
    "synthetic_name",
]
