"""The live trial line names the deployment-shape and capacity dimensions only when a trial sets them."""

from __future__ import annotations

import io


def test_trial_line_hides_default_deployment_and_capacity_values() -> None:
    from harness.pipeline import TrialConfig
    from harness.sweep import _Display

    out = io.StringIO()
    d = _Display(2, out)
    d.trial(0, TrialConfig(width=16000))
    d.trial(1, TrialConfig(width=16000, tile_width=3200, segments=2, bn_chan=64))
    plain, shaped = out.getvalue().splitlines()
    assert plain.startswith("[1/2 trial #0] prelu=keep ") and "recover_steps=0" in plain
    for key in ("tile_width", "tile_context", "segments", "n_filters", "bn_chan", "n_repeats"):
        assert f"{key}=" not in plain
    assert "tile_width=3200" in shaped and "segments=2" in shaped and "bn_chan=64" in shaped
    assert "tile_context=" not in shaped and "n_blocks=" not in shaped
