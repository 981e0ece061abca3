"""Every setting of one active-learning experiment, with validation and a JSON round trip."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..errors import NcalError

EVALS = ("ood", "shift", "probe", "gcd", "longtail")
ANNOTATOR_ERRORS = ("independent", "correlated")
ANNOTATOR_ASSIGNMENTS = ("round_robin", "random")
CONSENSUS_METHODS = ("majority", "ds", "auto")
# what the annotator settings mean when `annotators` is given and they are left unset
ANNOTATOR_DEFAULTS = {
    "annotator_errors": "independent",
    "annotator_assignment": "round_robin",
    "consensus": "auto",
}


@dataclass
class ExperimentConfig:
    """One run: dataset × noise × strategy × seed × budget × training recipe.

    Parameters
    ----------
    dataset : str
        Dataset name for :func:`ncal.data.load_dataset` (``mnist5k``, ``fashion_mnist``, ``digits``,
        ``cifar10:DIR``, ``npz:PATH``, ...).
    noise : str
        Oracle noise spec (``none``, ``sym:0.3``, ``human:cifar10n-worst``, ``oracle:0.3``, ...;
        :func:`ncal.data.describe_noise_models`): the one annotator of a run without
        ``annotators`` (unused with them).
    strategy, strategy_params
        Acquisition strategy name and its parameters (:func:`ncal.strategies.get`).
    initial, query, rounds, budgets
        Budget schedule; counts or fractions of the pool (see :func:`budget_schedule`).
    seed : int
        Fixes the initial set, the network initialisation of each round and the oracle's draws,
        identically for every strategy (paired design).
    pool_size, test_size : int or None
        Stratified subsamples of the training / test split (fixed by ``data_seed``, shared by all seeds).
    model : str
        ``auto`` (cnn for small grayscale images, resnet18 for colour, mlp for feature vectors) or a name.
    dropout : float or None
        Dropout before the head; ``None`` = 0 unless the strategy needs MC-dropout passes (then 0.3).
    train : dict
        Overrides of :class:`ncal.training.TrainConfig` fields.
    evals : list of str
        Extra per-round evaluations: ``ood``, ``shift``, ``probe``, ``gcd``, ``longtail``.
    features : {"raw", "pretrained"}
        ``pretrained``: replace images by frozen EfficientNet-Lite0 features (``pretrained`` extra,
        cached on disk; images resized to ``feature_size``) and train an MLP head on them.
    annotators : list of str or None
        One noise spec per simulated annotator (:class:`ncal.data.annotators.AnnotatorPool`;
        class-conditional specs or ``oracle:ε``). None: one annotator, the ``noise`` oracle, and one
        annotation per item. With annotators the budget counts annotations and a round trains on
        consensus labels (:mod:`ncal.experiment.annotations`).
    annotator_errors : {"independent", "correlated"} or None
        How the annotators' errors relate (default ``independent``); only with ``annotators``.
    annotator_assignment : {"round_robin", "random"} or None
        Which annotator answers a request (default ``round_robin``); only with ``annotators``.
    consensus : {"majority", "ds", "auto"} or None
        Consensus of an item's annotations (:func:`ncal.consensus.consensus_labels`; default
        ``auto``: Dawid–Skene where identifiable, else majority vote); only with ``annotators``.
    """

    dataset: str = "mnist5k"
    noise: str = "sym:0.3"
    strategy: str = "ncal_r"
    strategy_params: dict[str, Any] = field(default_factory=dict)
    initial: float | int = 200
    query: float | int = 200
    rounds: int = 5
    budgets: list[float | int] | None = None
    seed: int = 0
    data_seed: int = 0
    pool_size: int | None = None
    test_size: int | None = None
    model: str = "auto"
    dropout: float | None = None
    train: dict[str, Any] = field(default_factory=dict)
    evals: list[str] = field(default_factory=list)
    ood_dataset: str | None = None
    probe_datasets: list[str] = field(default_factory=list)
    pool_ood_dataset: str | None = None
    pool_ood_fraction: float = 0.0
    pool_imbalance: float | None = None
    gcd_known_fraction: float = 0.6
    features: str = "raw"
    feature_size: int = 32
    device: str = "auto"
    label: str | None = None
    # None (not the defaults of ANNOTATOR_DEFAULTS) so that settings without annotators equal those
    # written before annotators existed, and a run directory from then still resumes
    annotators: list[str] | None = None
    annotator_errors: str | None = None
    annotator_assignment: str | None = None
    consensus: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise NcalError(f"`seed` must be a non-negative integer; got {self.seed!r}")
        if not isinstance(self.strategy_params, dict):
            raise NcalError(f"`strategy_params` must be a mapping; got {self.strategy_params!r}")
        if not isinstance(self.train, dict):
            raise NcalError(f"`train` must be a mapping of TrainConfig fields; got {self.train!r}")
        unknown = [e for e in self.evals if e not in EVALS]
        if unknown:
            raise NcalError(f"unknown evaluation(s) {unknown} in `evals`; known: {list(EVALS)}")
        if not 0.0 <= float(self.pool_ood_fraction) < 1.0:
            raise NcalError(
                f"`pool_ood_fraction` must lie in [0, 1); got {self.pool_ood_fraction!r}"
            )
        if self.pool_ood_fraction and not self.pool_ood_dataset:
            raise NcalError(
                "`pool_ood_fraction` > 0 needs `pool_ood_dataset` (where OOD samples come from)"
            )
        if self.pool_imbalance is not None and float(self.pool_imbalance) < 1:
            raise NcalError(
                f"`pool_imbalance` (rho = n_max / n_min) must be >= 1; got {self.pool_imbalance!r}"
            )
        if self.dropout is not None and not 0.0 <= float(self.dropout) < 1.0:
            raise NcalError(f"`dropout` must lie in [0, 1); got {self.dropout!r}")
        if "ood" in self.evals and not self.ood_dataset:
            raise NcalError("evaluation `ood` needs `ood_dataset` (e.g. mnist5k for fashion_mnist)")
        if "probe" in self.evals and not self.probe_datasets:
            raise NcalError(
                "evaluation `probe` needs `probe_datasets` (target datasets for the linear probe)"
            )
        if self.features not in ("raw", "pretrained"):
            raise NcalError(f"`features` must be 'raw' or 'pretrained'; got {self.features!r}")
        image_evals = sorted({"ood", "shift", "probe"} & set(self.evals))
        if self.features == "pretrained" and image_evals:
            raise NcalError(
                f"evaluations {image_evals} feed other images to the model and are not available "
                "with `features: pretrained` yet; use raw inputs for them"
            )
        if not 0.0 < float(self.gcd_known_fraction) < 1.0:
            raise NcalError(
                f"`gcd_known_fraction` must lie in (0, 1); got {self.gcd_known_fraction!r}"
            )
        self._check_noise()
        self._check_annotators()
        self._check_names()

    def _check_names(self) -> None:
        """Strategy parameters and training keys by name, listing the valid ones on a typo."""
        from ..strategies.params import check_strategy_params
        from ..training.validate import check_train_keys

        check_strategy_params(self.strategy, self.strategy_params)
        check_train_keys(self.train)

    def _check_noise(self) -> None:
        from ..data import check_noise_spec

        try:
            check_noise_spec(self.noise)
        except ValueError as exc:
            raise NcalError(f"`noise`: {exc}") from None

    def _check_annotators(self) -> None:
        """Annotator specs parse; the annotator settings are in their choices and only given
        together with ``annotators``."""
        from ..data.annotators import parse_annotator_specs

        if self.annotators is not None:
            if (
                not isinstance(self.annotators, (list, tuple))
                or not self.annotators
                or not all(isinstance(s, str) for s in self.annotators)
            ):
                raise NcalError(
                    "`annotators` must be a non-empty list of noise specs, one per annotator "
                    f"(e.g. ['oracle:0.15', 'sym:0.3']); got {self.annotators!r}"
                )
            try:
                parse_annotator_specs(list(self.annotators))
            except NcalError as exc:
                raise NcalError(f"`annotators`: {exc}") from None
        choices = {
            "annotator_errors": ANNOTATOR_ERRORS,
            "annotator_assignment": ANNOTATOR_ASSIGNMENTS,
            "consensus": CONSENSUS_METHODS,
        }
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value is None:
                continue
            if self.annotators is None:
                raise NcalError(
                    f"`{name}` applies to several annotators: give `annotators` too (one noise "
                    "spec per annotator, `--annotator` on the command line)"
                )
            if value not in allowed:
                raise NcalError(f"`{name}` must be one of {list(allowed)}; got {value!r}")

    def annotator_setting(self, name: str) -> str:
        """``annotator_errors``, ``annotator_assignment`` or ``consensus`` as the run uses it
        (its default from :data:`ANNOTATOR_DEFAULTS` when unset)."""
        value = getattr(self, name)
        return ANNOTATOR_DEFAULTS[name] if value is None else value

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentConfig:
        """Build from a mapping, rejecting unknown keys with the list of known ones."""
        if not isinstance(data, dict):
            raise NcalError(f"an experiment config must be a mapping; got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise NcalError(f"unknown experiment setting(s) {unknown}; known: {sorted(known)}")
        return cls(**data)

    def settings(self) -> dict[str, Any]:
        """The settings that define the results (everything but presentation-only fields)."""
        d = self.to_dict()
        d.pop("device", None)
        return d
