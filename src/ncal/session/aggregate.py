"""Label aggregation and annotator agreement for ``ncal session``: a re-export of
:mod:`ncal.consensus`, which holds the one implementation shared with the simulated annotator loop.
"""

from ..consensus import (
    CONSENSUS_METHODS,
    ConsensusResult,
    DawidSkeneResult,
    MajorityResult,
    annotation_matrix,
    consensus_labels,
    consensus_purity,
    dawid_skene,
    ds_identifiable,
    krippendorff_alpha,
    latest_per_pair,
    majority_vote,
    pairwise_agreement,
    vote_counts,
)

__all__ = [
    "CONSENSUS_METHODS",
    "ConsensusResult",
    "DawidSkeneResult",
    "MajorityResult",
    "annotation_matrix",
    "consensus_labels",
    "consensus_purity",
    "dawid_skene",
    "ds_identifiable",
    "krippendorff_alpha",
    "latest_per_pair",
    "majority_vote",
    "pairwise_agreement",
    "vote_counts",
]
