"""Training steps: ``STEPS`` maps a name to a ``Step`` record (in ``base``).

``alternating`` and ``simultaneous`` (the standard adversarial step in its two update orders) and
``unrolled`` (the Unrolled GAN) and ``cycle`` (CycleGAN, the default step of the translator models). A plug-in registers its own and selects it with ``step = "name"``.
"""

from __future__ import annotations

from ganbench.steps.base import (  # noqa: F401
    STEPS,
    Step,
    StepContext,
    StepOutput,
    register,
    step_name,
    step_of,
)
from ganbench.steps import alternating, unrolled, cycle  # noqa: F401,I001  (register the built-in steps, in this order)
