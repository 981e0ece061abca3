"""Simulated pools of unreliable annotators: one annotation = one label from one annotator.

Each of ``M`` annotators has its own noise model, given by a spec of :mod:`ncal.data.noise`
(``sym:0.2``, ``human:cifar10n-random1`` ... any class-conditional model with a fixed transition
matrix) or ``oracle:ε`` (difficulty-dependent, :class:`~ncal.data.oracle.DifficultyOracle`, from
``reference_probs``). Per item ``i`` an annotator has an error probability ``eps_a(i)`` and a
distribution over wrong labels ``w_a(i, ·)`` (the transition row of the true class without its
diagonal; for ``oracle:`` the reference probabilities without the true class).

Errors
------
``"independent"``: every answer draws its own two uniforms, so annotators err independently and a
relabel by the same annotator is a fresh draw.

``"correlated"``: every item has one latent uniform ``u_i`` and one wrong-label uniform ``v_i``
shared by all annotators and all asks: annotator ``a`` errs iff ``u_i < eps_a(i)`` and then answers
the inverse-CDF of ``w_a(i, ·)`` at ``v_i``. Hard items (small ``u_i``) are missed by every
annotator whose error rate exceeds ``u_i``, and annotators with the same wrong-label distribution
give the same wrong label; asking again never changes an answer. Two annotators with rates
``e1 <= e2`` then agree with probability ``1 - (e2 - e1)`` (plus chance agreement when their wrong
distributions differ), against ``(1-e1)(1-e2) + e1·e2/(C-1)`` for independent symmetric noise.
Pairwise agreement measured in ``tests/test_annotators.py`` (10 classes, 4000 items, seed 1):
three ``sym:0.3`` annotators: independent 0.49, correlated 1.00; ``sym:0.2`` with ``sym:0.4``:
independent 0.48, correlated 0.79; ``human:cifar10n-random1|2|3``: independent 0.68,
correlated 0.97.

Assignment and determinism
--------------------------
Requests are counted per item: the ``t``-th ask of item ``i`` goes to annotator
``(o_i + t) mod M`` (``"round_robin"``, ``o_i`` an item-specific offset) or to a uniformly drawn
one (``"random"``). Every draw is a uniform derived with :func:`ncal._utils.random.derive_seed`
from ``(seed, annotator, item, j)`` (``j``: how often this annotator was asked this item before)
or ``(seed, item, t)`` for assignment, never from a shared stream: the answers do not depend on the
order of requests or on which strategy makes them, so strategies buying the same items get the
same answers (a paired design). An out-of-distribution item (``is_ood``) costs one annotation and
is answered :data:`~ncal.data.builders.NOT_IN_LABEL_SET`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._utils.random import derive_seed
from .._utils.validation import as_label_vector, check_choice
from ..errors import NcalError
from .builders import NOT_IN_LABEL_SET
from .noise import NoiseSpec, noise_transition_matrix, parse_noise_spec

ERROR_MODES = ("independent", "correlated")
ASSIGNMENTS = ("round_robin", "random")


def parse_annotator_specs(specs: Any) -> list[NoiseSpec]:
    """Parse a list of annotator noise specs (or one comma-separated string).

    Raises
    ------
    NcalError
        Naming the ``annotator`` (its position) whose spec is malformed, and the accepted forms.
    """
    if isinstance(specs, str):
        specs = [s for s in specs.split(",") if s.strip()]
    if not isinstance(specs, (list, tuple)) or not specs:
        raise NcalError(f"`specs` must be a non-empty list of annotator noise specs; got {specs!r}")
    out = []
    for a, spec in enumerate(specs):
        try:
            out.append(parse_noise_spec(spec))
        except ValueError as e:
            raise NcalError(f"annotator {a}: bad noise spec {spec!r}: {e}") from None
    return out


def _uniform(seed: int, *keys: object) -> float:
    """A uniform in [0, 1) determined by ``seed`` and ``keys`` (63 bits of BLAKE2b)."""
    return derive_seed(seed, *keys) / 2.0**63


@dataclass(frozen=True)
class AnnotatorModel:
    """One annotator: per-item error probability and cumulative wrong-label distribution.

    Attributes
    ----------
    spec : the parsed noise spec.
    error_prob : (N,) probability of a wrong answer per item (0 on OOD items).
    wrong_cdf : (N, C) cumulative distribution of the wrong label per item.
    """

    spec: NoiseSpec
    error_prob: np.ndarray
    wrong_cdf: np.ndarray


def _wrong_cdf(rows: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cumulative wrong-label distributions: ``rows`` without the true class, renormalised
    (uniform over the other classes where no mass is left)."""
    n, C = rows.shape
    w = rows.astype(np.float64, copy=True)
    w[np.arange(n), y] = 0.0
    mass = w.sum(axis=1, keepdims=True)
    uniform = (1.0 - np.eye(C)[y]) / max(C - 1, 1)
    w = np.where(mass > 1e-12, w / np.where(mass > 0, mass, 1.0), uniform)
    cdf = np.cumsum(w, axis=1)
    return cdf / cdf[:, -1:]


def build_annotator(
    spec: NoiseSpec,
    y: np.ndarray,
    num_classes: int,
    *,
    reference_probs: np.ndarray | None,
    annotator: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``(error_prob, wrong_cdf)`` of one annotator over in-distribution items with labels ``y``."""
    C = int(num_classes)
    if spec.model == "oracle":
        if reference_probs is None:
            raise NcalError(
                f"annotator {annotator}: {spec} is difficulty-dependent and needs "
                "`reference_probs` (N, C) from a reference model"
            )
        from .oracle import DifficultyOracle

        orc = DifficultyOracle(y, num_classes=C, target_rate=spec.rate, p_ref=reference_probs)
        return orc.error_prob, _wrong_cdf(orc.p_ref, y)
    try:
        T = noise_transition_matrix(spec, C)
    except ValueError as e:
        raise NcalError(
            f"annotator {annotator}: {spec} cannot be simulated per annotation ({e}); use a "
            "class-conditional spec (sym:, pairflip:, asym:, human:, none) or oracle:"
        ) from None
    return 1.0 - T[y, y], _wrong_cdf(T[y], y)


class AnnotatorPool:
    """``M`` simulated annotators answering label requests one annotation at a time.

    Build it with :meth:`from_specs`; ask with :meth:`annotate`. See the module docstring for the
    error modes, the assignment and the determinism guarantees.
    """

    def __init__(
        self,
        models: list[AnnotatorModel],
        y_clean: np.ndarray,
        is_ood: np.ndarray,
        *,
        num_classes: int,
        errors: str,
        assignment: str,
        seed: int,
    ) -> None:
        self.models = models
        self.y_clean = y_clean
        self.is_ood = is_ood
        self.num_classes = int(num_classes)
        self.errors = errors
        self.assignment = assignment
        self.seed = int(seed)
        self._asks = np.zeros(y_clean.size, dtype=np.int64)  # requests per item so far
        self._asks_by: dict[tuple[int, int], int] = defaultdict(int)  # (annotator, item) -> asks

    @classmethod
    def from_specs(
        cls,
        specs: Any,
        y_clean: Any,
        num_classes: int,
        *,
        errors: str = "independent",
        assignment: str = "round_robin",
        seed: int = 0,
        reference_probs: Any = None,
        is_ood: Any = None,
    ) -> AnnotatorPool:
        """A pool with one annotator per spec.

        Parameters
        ----------
        specs : list of str or str
            Noise spec per annotator (or one comma-separated string).
        y_clean : (N,) int
            True labels of the items (``-1`` allowed on OOD items).
        num_classes : int
        errors : {"independent", "correlated"}
        assignment : {"round_robin", "random"}
            Which annotator answers a request.
        seed : int
        reference_probs : (N, C) float, optional
            Reference-model probabilities, needed by ``oracle:`` annotators.
        is_ood : (N,) bool, optional
            Out-of-distribution items (answered ``NOT_IN_LABEL_SET``).
        """
        parsed = parse_annotator_specs(specs)
        errors = check_choice(errors, "errors", ERROR_MODES)
        assignment = check_choice(assignment, "assignment", ASSIGNMENTS)
        y_all = np.asarray(y_clean)
        ood = np.zeros(y_all.shape, dtype=bool) if is_ood is None else np.asarray(is_ood, bool)
        if ood.shape != y_all.shape or y_all.ndim != 1:
            raise NcalError(f"`is_ood` must match `y_clean` ({y_all.shape}); got {ood.shape}")
        ind = ~ood
        y = as_label_vector(y_all[ind], "y_clean", num_classes=num_classes)
        ref = None
        if reference_probs is not None:
            ref = np.asarray(reference_probs, dtype=np.float64)
            if ref.shape != (y_all.size, int(num_classes)):
                raise NcalError(
                    f"`reference_probs` must be ({y_all.size}, {num_classes}); got {ref.shape}"
                )
            ref = ref[ind]
        models = []
        for a, spec in enumerate(parsed):
            eps_in, cdf_in = build_annotator(spec, y, num_classes, reference_probs=ref, annotator=a)
            eps = np.zeros(y_all.size)
            cdf = np.ones((y_all.size, int(num_classes)))
            eps[ind], cdf[ind] = eps_in, cdf_in
            models.append(AnnotatorModel(spec, eps, cdf))
        y_full = np.where(ood, NOT_IN_LABEL_SET, y_all).astype(np.int64)
        return cls(
            models, y_full, ood, num_classes=num_classes, errors=errors,
            assignment=assignment, seed=seed,
        )  # fmt: skip

    @property
    def n_annotators(self) -> int:
        return len(self.models)

    def params(self) -> dict[str, Any]:
        """What defines the pool (recorded with results)."""
        return {
            "annotators": [str(m.spec) for m in self.models],
            "errors": self.errors,
            "assignment": self.assignment,
            "seed": self.seed,
        }

    def _who(self, item: int, t: int) -> int:
        M = self.n_annotators
        if self.assignment == "round_robin":
            return (derive_seed(self.seed, "offset", item) + t) % M
        return derive_seed(self.seed, "assign", item, t) % M

    def answer(self, annotator: int, item: int, j: int) -> int:
        """Annotator ``annotator``'s answer for ``item`` on its ``j``-th ask of that item."""
        if self.is_ood[item]:
            return NOT_IN_LABEL_SET
        m = self.models[annotator]
        if self.errors == "correlated":
            u, v = _uniform(self.seed, "err", item), _uniform(self.seed, "wrong", item)
        else:
            u = _uniform(self.seed, "err", annotator, item, j)
            v = _uniform(self.seed, "wrong", annotator, item, j)
        if u >= m.error_prob[item]:
            return int(self.y_clean[item])
        return int(min(np.searchsorted(m.wrong_cdf[item], v, side="right"), self.num_classes - 1))

    def annotate(self, items: Any) -> tuple[np.ndarray, np.ndarray]:
        """One annotation for each entry of ``items`` (an item may repeat: each entry is one ask).

        Returns
        -------
        annotator_ids : (len(items),) int64
        labels : (len(items),) int64, ``NOT_IN_LABEL_SET`` for OOD items.
        """
        idx = np.atleast_1d(np.asarray(items))
        if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
            raise NcalError(f"`items` must be a 1-D array of item indices; got {idx!r}")
        if idx.size and (idx.min() < 0 or idx.max() >= self.y_clean.size):
            raise NcalError(f"`items` must lie in [0, {self.y_clean.size}); got {idx.min()}..")
        who = np.empty(idx.size, dtype=np.int64)
        labels = np.empty(idx.size, dtype=np.int64)
        for n, item in enumerate(idx.tolist()):
            a = self._who(item, int(self._asks[item]))
            self._asks[item] += 1
            j = self._asks_by[(a, item)]
            self._asks_by[(a, item)] = j + 1
            who[n], labels[n] = a, self.answer(a, item, j)
        return who, labels

    def asks(self, item: int) -> int:
        """How many annotations ``item`` has received so far."""
        return int(self._asks[item])
