"""Landmark recognition on GLDv2: data, models, retrieval, non-landmark detection, submission."""
