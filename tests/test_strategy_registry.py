"""The static strategy catalog: equal to what the modules register, and torch-free to list and build."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import textwrap

import pytest

import ncal.strategies as S
from ncal.strategies import _registry

# Modules of the package that hold no strategy.
NOT_STRATEGIES = {"base", "selection"}


def _registered_by_modules() -> dict[str, type]:
    """Import every strategy module and collect the classes they register, by name."""
    found: dict[str, type] = {}
    for mod in pkgutil.iter_modules(S.__path__):
        if mod.name.startswith("_") or mod.name in NOT_STRATEGIES:
            continue
        module = importlib.import_module(f"ncal.strategies.{mod.name}")
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, S.Strategy)
                and obj.__module__ == module.__name__
                and obj.name
            ):
                found[obj.name] = obj
    return found


def test_catalog_equals_what_the_modules_register() -> None:
    found = _registered_by_modules()
    assert sorted(found) == sorted(_registry._CATALOG)
    for name, cls in found.items():
        entry = S.info(name)
        module = cls.__module__.removeprefix("ncal.strategies.")
        assert entry.target == f"{module}:{cls.__qualname__}", name
        assert entry.needs == tuple(cls.needs), name
        assert entry.summary == cls.__doc__.strip().splitlines()[0], name
        assert S.strategy_class(name) is cls


def test_listing_and_building_import_no_torch() -> None:
    code = textwrap.dedent(
        """
        import sys
        import ncal, ncal.strategies as S
        names = S.available()
        infos = [S.info(n) for n in names]
        classes = [S.strategy_class(n) for n in names]
        built = [S.get(n) for n in names]
        print(len(names), "torch" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(len(S.available())), "False"]


def test_unknown_name_lists_the_known_ones() -> None:
    for lookup in (S.get, S.strategy_class, S.info):
        with pytest.raises(ValueError, match=r"unknown strategy 'nope'.*entropy"):
            lookup("nope")


def test_a_user_strategy_registers_and_a_builtin_name_is_protected() -> None:
    class Lowest(S.Strategy):
        """Pick the lowest pool indices."""

        name = "test_lowest_indices"

        def __init__(self, offset: int = 0) -> None:
            self.offset = offset

        def _select(self, signals, k, rng):
            return S.Selection(list(range(self.offset, self.offset + k)))

    try:
        assert "test_lowest_indices" in S.available()
        assert S.info("test_lowest_indices").summary == "Pick the lowest pool indices."
        strat = S.get("test_lowest_indices", offset=2)
        assert strat.params() == {"offset": 2}
        assert repr(strat) == "Lowest(offset=2)"
        with pytest.raises(ValueError, match="belongs to the built-in uncertainty:EntropySampling"):
            type("Impostor", (S.Strategy,), {"name": "entropy"})
    finally:
        _registry._REGISTERED.pop("test_lowest_indices", None)


def test_params_needs_every_init_parameter_stored() -> None:
    class Forgetful(S.Strategy):
        def __init__(self, alpha: float = 1.0) -> None:
            self._alpha = alpha

    with pytest.raises(TypeError, match=r"takes `alpha` but does not store it as `self.alpha`"):
        Forgetful().params()

    class Loose(S.Strategy):
        def __init__(self, **kwargs: float) -> None:
            self.kwargs = kwargs

    with pytest.raises(TypeError, match="must be named"):
        Loose().params()


def test_recorded_params_of_the_demo_strategies_are_unchanged() -> None:
    assert S.get("random").params() == {}
    assert S.get("entropy").params() == {}
    assert S.get("ncal_r").params() == {
        "direction": "high",
        "centering": "none",
        "mu_G": "class_avg",
        "pair": "signed",
        "empty_class": "formula",
        "expected": False,
        "weights": (0.5, 0.5),
        "block_size": 8192,
        "ff": "flips",
        "ff_zero_share": 0.95,
    }


def test_stochastic_is_per_instance() -> None:
    assert S.get("random").stochastic and not S.get("entropy").stochastic
    assert not S.get("diverse", base="entropy", method="kcenter").stochastic
    assert S.get("diverse", base="entropy", method="kmeanspp").stochastic
    assert S.get("diverse", base="random", method="kcenter").stochastic
    assert S.get("bait", prefilter="random").stochastic
    assert not S.get("bait").stochastic
