"""The hypothesis profile the property tests run under, here and in CI.

Examples are bounded so that the whole suite stays well under a minute; there is no
deadline (the CI machine is shared, and a slow example is not a wrong one). The seed is
not fixed: every run explores afresh, and a failure prints the blob that replays it.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
# A longer hunt on a developer's machine: HYPOTHESIS_PROFILE=deep.
settings.register_profile("deep", parent=settings.get_profile("ci"), max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
