"""The reply writer the service ships, at its real size, gated on a CPU-only runner.

The other tests run tiny models, whose cost on a GPU is mostly kernel launches: they catch
a change in the code, but their kWh say little about production. This test prices the
production model itself, Llama 3.1 8B in bfloat16, built on torch's ``meta`` device
(``service.models.production_reply_model``): no weights are allocated and nothing is
computed, and the ``roofline`` meter models what each operation would cost on the target
GPU (H100 SXM by default) from its shapes and dtype. The whole test takes seconds.

``energy.generate`` runs one request pattern: a batch of 8 replies, each a 512-token
prompt (prefill) followed by exactly 256 greedy decode steps with a KV cache. One
inference is one reply; the report shows J per reply, J per generated token, and the
split into prefill (J per reply) and decode (J per token).

Only the roofline meter can price a meta model: a sensor would measure the Python
overhead of operations that never ran. Under any other meter the test is skipped; on a GPU
runner, meter the real model instead (``EXAMPLE_MODEL_SIZE=realistic``).
"""

from __future__ import annotations

import pytest
import torch

from service.models import production_reply_model

BATCH = 8
PROMPT_TOKENS = 512
NEW_TOKENS = 256

#: kWh per 1,000 replies. ML.ENERGY's leaderboard (v3) measured Llama 3.1 8B Instruct on
#: one H100 SXM under vLLM at batch 8: 0.455 J per generated token, so 0.032 kWh per 1,000
#: replies of 256 tokens. This service decodes with transformers' eager ``generate``, which
#: launches every kernel from Python: the committed baseline models 0.079 kWh (1.11 J per
#: token, 46% of it launch overhead) on H100 SXM, eager, and 0.035 kWh under
#: ``--energy-engine=compiled``. The budget caps the eager figure on every shipped target
#: (B200 models the most, 0.115 kWh: a 1,000 W board waiting on Python between kernels);
#: the baseline, at 1%, catches smaller changes.
BUDGET_KWH = 0.12


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return production_reply_model()


@pytest.mark.energy_budget(kwh=BUDGET_KWH)
def test_production_reply_writer_energy_per_reply(model: torch.nn.Module, energy) -> None:
    if energy.meter is None or energy.meter.name != "roofline":
        pytest.skip("a meta-device model is priced by --energy-meter=roofline only")
    energy.generate(model, batch_size=BATCH, prompt_tokens=PROMPT_TOKENS, new_tokens=NEW_TOKENS)
    record = energy.result
    assert record is not None
    assert (record.inferences, record.tokens) == (BATCH, BATCH * NEW_TOKENS)
