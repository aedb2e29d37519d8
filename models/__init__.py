"""Pantau's detectors: River models and rules, pure Python, one detector per file.

Nothing here imports Faust or Kafka, so the same objects run in the worker, in
``pantau replay``, in tests and in benchmarks. See :mod:`models.base` for the
contract every detector follows.
"""

from models.base import Finding

__all__ = ["Finding"]
