"""Ray reads this when it is imported: with it, a driver on this machine keeps to 127.0.0.1, where
the test cluster's nodes listen (else it looks for them at the host's own address)."""

import os

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
