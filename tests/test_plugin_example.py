"""The README's plugin example runs as part of the suite, so it can never rot."""

from examples.test_my_client import test_my_client_survives_a_reset

__all__ = ["test_my_client_survives_a_reset"]
