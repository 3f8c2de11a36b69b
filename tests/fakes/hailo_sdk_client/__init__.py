"""A small, honest fake of the Hailo Dataflow Compiler's ``hailo_sdk_client`` for hefsweep's tests.

Put ``tests/fakes`` on ``sys.path`` (or ``PYTHONPATH``) to use it. It reproduces the public API surface listed
in ``/work/shared/dfc_api.md`` and the failures of the Conv-TasNet seed; ``README.md`` says which behaviours
rest on confirmed facts and which are guesses.
"""

from __future__ import annotations

from hailo_sdk_client._fake.acceleras import install_aliases
from hailo_sdk_client.exposed_definitions import InferenceContext, States
from hailo_sdk_client.runner.client_runner import ClientRunner

__all__ = ["ClientRunner", "InferenceContext", "States", "__version__"]

#: dfc_api.md §1.1 / §7: the DFC version string (the seed ran on 3.33.0) [C].
__version__ = "3.33.0"

install_aliases()
