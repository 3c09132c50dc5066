"""edgeft: fine-tune, distill, quantize and export transformer encoders for named devices, and verify them there.

This module stays lean on purpose: a device imports `edgeft.runtime`, which must not pull in torch.
"""

__version__ = "0.1.0"
