"""Human-in-the-loop labeling sessions: a resumable loop for a pool and imperfect annotators.

>>> from ncal.session import Session                                  # doctest: +SKIP
>>> s = Session.create("runs/s1", "pool.npz", classes=["cat", "dog"])  # doctest: +SKIP
>>> batch = s.next_batch(100)          # writes runs/s1/batches/round_001.csv + Label Studio JSON
>>> s.import_labels("round_001_filled.csv")                            # doctest: +SKIP
>>> s.review(20); s.status(); s.export_labels(method="ds")            # doctest: +SKIP

The command line is ``ncal session init|next|import|review|status|export``
(:mod:`ncal.session.cli`).
"""

from .aggregate import (
    DawidSkeneResult,
    MajorityResult,
    dawid_skene,
    krippendorff_alpha,
    majority_vote,
    pairwise_agreement,
)
from .core import Aggregate, BatchResult, ImportReport, Session
from .review import ReviewScores, mislabel_scores
from .store import SessionStore

__all__ = [
    "Aggregate",
    "BatchResult",
    "DawidSkeneResult",
    "ImportReport",
    "MajorityResult",
    "ReviewScores",
    "Session",
    "SessionStore",
    "dawid_skene",
    "krippendorff_alpha",
    "majority_vote",
    "mislabel_scores",
    "pairwise_agreement",
]
