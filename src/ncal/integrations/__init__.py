"""Use ncal from your own model: FF recording and selection signals for a plain PyTorch loop, a
PyTorch Lightning ``Trainer`` and a Hugging Face ``transformers.Trainer``.

``FFTracker`` needs torch only; the callbacks live in their own modules so that the optional
frameworks are imported only when asked for::

    from ncal.integrations import FFTracker                # plain PyTorch loop
    from ncal.integrations.lightning import FFCallback     # extra `lightning`
    from ncal.integrations.hf import FFCallback            # extra `hf`
"""

from .torch_loop import DegenerateFFWarning, FFTracker, warn_if_degenerate

__all__ = ["DegenerateFFWarning", "FFTracker", "warn_if_degenerate"]
