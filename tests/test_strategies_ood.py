"""OOD-aware selection: the P(ID) estimators, the ``ood_gate`` wrapper and ``eaoa``."""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import ncal.strategies as S
from ncal._utils.numeric import softmax
from ncal.strategies._ood_scores import gmm_id_probability, id_probability, nearest_labeled
from ncal.strategies.eaoa import knn_vote_idness, within_class_margin_rank
from strategy_contract import ParamCases, StrategyContract


def ood_blobs(
    n_id: int = 400,
    n_ood: int = 100,
    n_lab: int = 60,
    d: int = 16,
    c: int = 4,
    seed: int = 0,
    scale: float = 3.0,
) -> tuple[S.Signals, np.ndarray, np.ndarray]:
    """Gaussian class blobs, an OOD blob far away, a distance-based head and three annotators who
    err more on low-margin (hard) items.

    Returns the signals, the pool's OOD mask and each pool item's annotator error probability.
    """
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, scale, (c, d))
    ood_center = rng.normal(0, 3, d) + 12.0 * np.eye(d)[0]
    y = rng.integers(0, c, n_id)
    fp = np.vstack(
        [centers[y] + rng.normal(0, 1.2, (n_id, d)), ood_center + rng.normal(0, 1.2, (n_ood, d))]
    )
    yl = np.r_[np.arange(c), rng.integers(0, c, n_lab - c)]
    fl = centers[yl] + rng.normal(0, 1.2, (n_lab, d))

    def head(f: np.ndarray) -> np.ndarray:
        return -0.5 * ((f[:, None, :] - centers[None]) ** 2).sum(-1) / 4.0

    def error_probability(p: np.ndarray) -> np.ndarray:
        top2 = np.sort(p, axis=1)[:, -2:]
        return 0.6 * np.exp(-(top2[:, 1] - top2[:, 0]) / 0.15)

    p_lab = softmax(head(fl))
    err_lab = error_probability(p_lab)
    ann = np.empty((n_lab, 3), dtype=np.int64)
    for j in range(3):
        wrong = rng.random(n_lab) < err_lab
        ann[:, j] = np.where(wrong, (yl + rng.integers(1, c, n_lab)) % c, yl)
    sig = S.Signals(
        logits_pool=head(fp),
        features_pool=fp.astype(np.float32),
        features_labeled=fl.astype(np.float32),
        labels_labeled=yl,
        probs_labeled=p_lab,
        ff_counts=rng.integers(0, 4, fp.shape[0]),
        ff_margin_std=rng.gamma(2.0, 0.05, fp.shape[0]),  # drawn last: the rest stays as it was
        num_classes=c,
        annotations_labeled=ann,
        probs_labeled_oof=p_lab,
    )
    is_ood = np.r_[np.zeros(n_id, bool), np.ones(n_ood, bool)]
    return sig, is_ood, error_probability(softmax(head(fp)))


# ----------------------------------------------------------------------------- P(ID)
@pytest.mark.parametrize(
    "scores", [("energy",), ("class_mean",), ("knn",), ("energy", "class_mean", "knn")]
)
@pytest.mark.parametrize("combine", ["rank", "z"])
def test_p_id_ranks_ood_below_id(scores: tuple[str, ...], combine: str) -> None:
    sig, is_ood, _ = ood_blobs(seed=1)
    est = id_probability(
        sig.features_pool, sig.features_labeled, sig.labels_labeled, sig.logits_pool,
        scores=scores, combine=combine,
    )  # fmt: skip
    assert roc_auc_score(~is_ood, est.p_id) > 0.9
    if combine == "z":  # z-averaging keeps the gap, so P(ID) itself separates the two
        assert est.p_id[is_ood].max() < 0.1 and est.p_id[~is_ood].min() > 0.9
    assert not est.info["degenerate"] and est.info["scores"] == list(scores)


def test_degenerate_mixture_warns_with_numbers_and_gates_nothing() -> None:
    with pytest.warns(RuntimeWarning, match=r"pooled stds apart .* weights"):
        est = gmm_id_probability(np.random.default_rng(0).normal(size=3000))
    assert est.info["degenerate"] and est.info["separation"] < 2.0
    np.testing.assert_array_equal(est.p_id, 1.0)
    with pytest.warns(RuntimeWarning, match="constant"):
        assert gmm_id_probability(np.full(10, 2.0)).p_id.tolist() == [1.0] * 10


def test_posterior_is_sklearns_predict_proba() -> None:
    from sklearn.mixture import GaussianMixture

    from ncal.strategies._ood_scores import _posterior

    rng = np.random.default_rng(3)
    for scale in (1e-3, 1.0, 1e3):
        x = scale * np.r_[rng.normal(0.0, 1.0, 3000), rng.normal(-3.0, 0.5, 700)]
        gmm = GaussianMixture(2, covariance_type="full", random_state=0, reg_covar=1e-6)
        gmm.fit(x[:, None])
        want = gmm.predict_proba(x[:, None])
        for comp in (0, 1):
            got = _posterior(
                x, gmm.means_.ravel(), gmm.covariances_.ravel(), gmm.weights_.ravel(), comp
            )
            np.testing.assert_allclose(got, want[:, comp], rtol=0, atol=1e-12)


def test_close_mixture_is_split_once_ood_was_reported() -> None:
    # a skewed population with a minority 1.8 standard deviations below it: too close for the
    # separation test, which turns the gate off; with min_separation=0 (OOD reported) it splits
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(0.0, 1.0, 2400), rng.normal(-1.8, 0.8, 600)]
    minority = np.arange(x.size) >= 2400
    with pytest.warns(RuntimeWarning, match="pooled stds apart"):
        assert gmm_id_probability(x).info["degenerate"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = gmm_id_probability(x, min_separation=0.0)
    assert not est.info["degenerate"] and est.info["separation"] < 2.0
    assert roc_auc_score(~minority, est.p_id) > 0.85
    assert est.p_id[minority].mean() < 0.5 < est.p_id[~minority].mean()


@pytest.mark.parametrize("strategy", ["ood_gate", "ncal_plus"])
def test_gates_take_the_split_only_when_ood_was_reported(strategy, monkeypatch) -> None:
    """The separation test is lifted only by reports: a count of 0 or an unknown count keeps it."""
    from ncal.strategies import ood_gate
    from ncal.strategies._ood_scores import MIN_SEPARATION

    seen = []
    real = ood_gate.id_probability

    def spy(*args, **kwargs):
        seen.append(kwargs["min_separation"])
        return real(*args, **kwargs)

    monkeypatch.setattr(ood_gate, "id_probability", spy)
    sig, _, _ = ood_blobs()
    params = {"min_ood_share": 0.0}
    if strategy == "ncal_plus":
        params.update(reliability=False, relabel=False)
    for n_rejected in (20, 0, None):
        S.get(strategy, **params).select(replace(sig, n_rejected_labeled=n_rejected), 30)
    assert seen == [0.0, MIN_SEPARATION, MIN_SEPARATION]


def test_nearest_labeled_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    fp, fl = rng.normal(size=(50, 5)), rng.normal(size=(12, 5))
    sims, rows = nearest_labeled(fp, fl, 3, block=7)  # several blocks
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    full = unit(fp) @ unit(fl).T
    np.testing.assert_array_equal(rows, np.argsort(-full, axis=1)[:, :3])
    np.testing.assert_allclose(sims, np.sort(full, axis=1)[:, ::-1][:, :3], rtol=1e-5)


def test_energy_needs_logits_and_scores_are_checked() -> None:
    sig, _, _ = ood_blobs()
    with pytest.raises(ValueError, match="logits_pool"):
        id_probability(sig.features_pool, sig.features_labeled, sig.labels_labeled, None)
    with pytest.raises(ValueError, match="`scores`"):
        id_probability(
            sig.features_pool, sig.features_labeled, sig.labels_labeled, scores=("mahalanobis",)
        )


# ----------------------------------------------------------------------------- ood_gate
class TestOODGate(StrategyContract):
    strategy_name = "ood_gate"
    params: ClassVar[dict[str, Any]] = {"base": "margin"}
    bad_params: ClassVar[list[dict[str, Any]]] = [
        {"threshold": 1.5},
        {"ood_scores": ()},
        {"base": "activelab"},
        {"base": "ood_gate"},
    ]
    param_cases: ClassVar[ParamCases] = {
        "base": [("entropy", None), ("ncal_r", None), ("activelab", ValueError), (3, TypeError)],
        "threshold": [(0.0, None), (1.0, None), (-0.1, ValueError), ("x", TypeError)],
        "mode": [("drop", None), ("weight", None), ("soft", ValueError)],
        "min_ood_share": [(0.0, None), (0.5, None), (1.5, ValueError)],
        "ood_scores": [
            (("knn",), None),
            (["energy", "class_mean"], None, ("energy", "class_mean")),
            (("knn", "knn"), ValueError),
            ("knn", TypeError),
        ],
        "combine": [("rank", None), ("z", None), ("mean", ValueError)],
        "n_neighbors": [(1, None), (500, None), (0, ValueError), (2.0, TypeError)],
        "base_params": [({}, None, {}), ({"no": 1}, TypeError)],
    }

    @pytest.fixture(autouse=True)
    def _quiet(self):  # the contract's pool has no OOD blob: the mixture may be degenerate
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            yield


def test_gate_drop_is_base_on_kept_items() -> None:
    sig, is_ood, _ = ood_blobs()
    sel = S.get("ood_gate", base="margin").select(sig, 30)
    assert not is_ood[sel.indices].any() and sel.info["n_kept"] == (~is_ood).sum()
    kept = np.flatnonzero(~is_ood)
    p = sig.probabilities()[kept]
    top2 = np.sort(p, axis=1)[:, -2:]
    want = kept[np.lexsort((kept, top2[:, 1] - top2[:, 0]))[:30]]
    np.testing.assert_array_equal(sel.indices, want)
    assert S.get("margin").select(sig, 30).indices.tolist() != want.tolist()


def test_gate_steps_aside_when_no_ood_was_reported() -> None:
    sig, is_ood, _ = ood_blobs()
    silent = S.get("ood_gate", base="margin").select(replace(sig, n_rejected_labeled=0), 30)
    np.testing.assert_array_equal(silent.indices, S.get("margin").select(sig, 30).indices)
    assert silent.info["ood_evidence"]["ood_reports"] == 0 and "id_mixture" not in silent.info
    reported = S.get("ood_gate", base="margin").select(replace(sig, n_rejected_labeled=20), 30)
    assert not is_ood[reported.indices].any() and "id_mixture" in reported.info


def test_gate_fills_with_most_id_like_when_too_few_pass() -> None:
    sig, is_ood, _ = ood_blobs(n_id=20)
    sel = S.get("ood_gate", base="entropy").select(sig, 50)
    assert sel.info["n_filled"] == 30 and sel.scores is None
    assert is_ood[sel.indices[:20]].sum() == 0 and is_ood[sel.indices[20:]].all()


def test_gate_weight_mode_keeps_ood_out() -> None:
    sig, is_ood, _ = ood_blobs(seed=2)
    assert is_ood[S.get("margin").select(sig, 40).indices].all()  # margin wants the OOD blob
    sel = S.get("ood_gate", base="margin", mode="weight").select(sig, 40)
    assert not is_ood[sel.indices].any()


# ----------------------------------------------------------------------------- eaoa
class TestEAOA(StrategyContract):
    strategy_name = "eaoa"
    bad_params: ClassVar[list[dict[str, Any]]] = [{"temperature": 0.0}, {"candidate_ratio": 0.5}]
    param_cases: ClassVar[ParamCases] = {
        "n_neighbors": [(1, None), (100, None), (0, ValueError), (1.5, TypeError)],
        "temperature": [(0.1, None), (2, None), (0.0, ValueError), ("t", TypeError)],
        "candidate_ratio": [(1.0, None), (20, None), (0.9, ValueError)],
        "threshold": [(0.0, None), (1.0, None), (2.0, ValueError)],
    }

    @pytest.fixture(autouse=True)
    def _quiet(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            yield


def test_eaoa_avoids_ood_and_spreads_over_predicted_classes() -> None:
    for seed in range(3):
        sig, is_ood, _ = ood_blobs(seed=seed)
        sel = S.get("eaoa").select(sig, 40)
        assert not is_ood[sel.indices].any()
        assert sel.info["n_candidates"] == 200
        # within-class ranking: each predicted class gets its share of the candidates, +-1
        picked = np.bincount(sig.predictions()[sel.indices], minlength=4)
        share = 40 * np.array(sel.info["candidates_per_class"]) / 200
        assert np.abs(picked - share).max() <= 1.0


def test_knn_vote_idness_hand_case() -> None:
    fl = np.array([[1.0, 0.0], [0.0, 1.0]])
    fp = np.array([[1.0, 0.0], [1.0, 1.0]])
    got = knn_vote_idness(fp, fl, np.array([0, 1]), num_classes=3, n_neighbors=2, temperature=0.5)
    s = np.sqrt(0.5)
    want = [np.log(np.exp(2.0) + np.exp(0.0) + 1.0), np.log(2 * np.exp(2 * s) + 1.0)]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_within_class_margin_rank_hand_case() -> None:
    q = within_class_margin_rank(np.array([0.5, 0.1, 0.3, 0.2, 0.9]), np.array([0, 0, 1, 0, 1]))
    np.testing.assert_allclose(q, [1.0, 1 / 3, 0.5, 2 / 3, 1.0])
