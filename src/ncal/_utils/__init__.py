"""Internal helpers shared by every layer; one definition of each.

* :mod:`.io` — atomic writes, JSON / JSONL reading with one error policy;
* :mod:`.random` — one ``derive_seed`` and one generator helper;
* :mod:`.torch` — device, threads and seeding for torch (imports torch; only torch users load it);
* :mod:`.validation` — argument checks whose errors name the argument;
* :mod:`.numeric` — float64 softmax / log-softmax;
* :mod:`.locks` — an exclusive, non-blocking lock on a directory (run and session stores).

This package sits below every other layer and imports nothing from ``ncal`` except ``ncal.errors``.
"""
