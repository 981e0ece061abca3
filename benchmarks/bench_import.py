"""Import time of ncal's light entry points, against ``import numpy`` measured in the same run.

    python benchmarks/bench_import.py [--repeat 7]

Each statement runs in a fresh interpreter (``python -c``), ``--repeat`` times; the median wall time
is printed with its ratio to the numpy baseline, and whether torch ended up imported (it must not:
listing strategies and importing ncal never need it). Goal: under 0.5 s each on this machine kind.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CASES = {
    "baseline: import numpy": "import numpy",
    "import ncal": "import ncal",
    "import ncal.strategies": "import ncal.strategies",
    "list strategies": "import ncal.strategies as S; S.available(); [S.info(n) for n in S.available()]",
    "reference: import torch": "import torch",
}


def time_statement(code: str, repeat: int) -> tuple[float, bool]:
    """Median seconds of ``python -c code`` and whether torch was imported by it."""
    probe = f"{code}\nimport sys\nprint('torch' in sys.modules)"
    times, loaded = [], False
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        )
        times.append(time.perf_counter() - t0)
        loaded = out.stdout.strip().endswith("True")
    return statistics.median(times), loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    base = None
    print(f"{'statement':<28} {'median s':>9} {'x numpy':>8} {'torch loaded':>13}")
    for name, code in CASES.items():
        sec, torch_loaded = time_statement(code, args.repeat)
        base = base or sec
        print(f"{name:<28} {sec:>9.3f} {sec / base:>8.2f} {torch_loaded!s:>13}")


if __name__ == "__main__":
    main()
