"""Where the real DFC's artifacts are: ``../shared/real_dfc`` beside the checkout (as on developer machines and in
CI), or ``$HEFSWEEP_REAL_DFC``."""

from __future__ import annotations

import os
from pathlib import Path

REAL_DFC = Path(os.environ.get("HEFSWEEP_REAL_DFC") or Path(__file__).resolve().parents[3] / "shared" / "real_dfc")
