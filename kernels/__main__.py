"""``python -m tritonnn.kernels``: compile every Triton kernel for sm_90 and sm_80 and print registers, spills,
shared memory and tensor-core instructions (no GPU needed). Run it without TRITON_INTERPRET."""

import sys

from ._aot import main

sys.exit(main())
