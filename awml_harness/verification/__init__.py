"""Verification: is a deployed backend's output still the reference's?

`tolerance` decides which rule holds each output of a scenario (one documented
precedence, most specific first, with the reduced-precision floors); the comparison of
the values themselves is `awml_harness.compare`.
"""
