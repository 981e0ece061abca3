"""Named training recipes: a backbone and the training settings that go with it.

``default`` is what ``ncal run`` does without a recipe (``model: auto``: a small CNN for grayscale
images, ResNet-18 for colour ones, an MLP for feature vectors; :class:`ncal.training.TrainConfig`'s
defaults). ``fast-mlp`` is the recipe of the repository's studies and of ``ncal demo``: an MLP on the
pixels, trained to the terminal phase in seconds per round on a CPU (docs/findings.md §8.1 says how it
was chosen: on training-side criteria only, never on test accuracy).
"""

from __future__ import annotations

from typing import Any

RECIPES: dict[str, dict[str, Any]] = {
    "default": {"model": "auto", "train": {}},
    "fast-mlp": {
        "model": "mlp",
        "train": {
            "lr": 0.01,
            "augment": False,
            "epochs_max": 150,
            "plateau_patience": 30,
            "window_lr_factor": 0.5,
            "num_threads": 1,
        },
    },
}


def recipe(name: str) -> dict[str, Any]:
    """A copy of recipe ``name`` (``{"model": ..., "train": {...}}``)."""
    if name not in RECIPES:
        from ..errors import NcalError

        raise NcalError(f"unknown `recipe` {name!r}; known: {', '.join(RECIPES)}")
    entry = RECIPES[name]
    return {"model": entry["model"], "train": dict(entry["train"])}
