"""The ``meterwatch`` command line: univariate, multivariate, serve (outside the domain rooms)."""
