"""On-demand performance measurements (issue 9): `python -m benchmarks.run`.

Not collected by the default test run (pytest.ini: testpaths = tests suites).
"""
