"""Shared test settings: hypothesis kept cheap for CI (NNIR_HYPOTHESIS_PROFILE=thorough: more)."""
import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=500, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("NNIR_HYPOTHESIS_PROFILE", "ci"))
