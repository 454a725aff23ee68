"""Cooperative decoding: several local models produce one generation together.

Each decoder is a :class:`~accord.backends.base.Backend`, so any agent or pattern can use it,
and it batches concurrent requests, streams, honours stop strings and ``max_tokens``, reports
each model's tokens in ``usage.by_model``, and stops a row when its caller goes away:

- :class:`Speculative` (target + draft): the target's own output, faster when the draft agrees;
- :class:`Contrastive` (expert + amateur): the expert's plausible tokens the amateur finds least
  likely;
- :class:`ProxyTuned` (base + expert + anti-expert): a base steered by a small tuned/untuned pair.

Names: ``accord.backend("speculative:hf:./big+hf:./small")``,
``accord.backend("contrastive:hf:./expert+hf:./amateur")``,
``accord.backend("proxy:hf:./base+hf:./expert+hf:./anti")``. All models must share one
tokenizer; a model without a chat template reads the prompt text as it is.
"""

from accord.decoding._engine import CooperativeBackend, Row
from accord.decoding._logits import Contrastive, ProxyTuned
from accord.decoding._logits import _Combined as CombinedLogits
from accord.decoding._speculative import Speculative, SpeculativeStats

__all__ = [
    "Speculative",
    "SpeculativeStats",
    "Contrastive",
    "ProxyTuned",
    "CooperativeBackend",
    "Row",
    "CombinedLogits",
]
