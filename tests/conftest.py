"""Suite-wide settings: one torch thread (CI has 2 shared cores; small batched linear algebra is far
slower with thread contention than single-threaded) and matplotlib without a display."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import torch

torch.set_num_threads(1)
