"""Univariate detection: series on a grid, the v1.1 contract, and the detection use cases."""
