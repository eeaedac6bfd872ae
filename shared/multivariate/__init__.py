"""Multivariate detection: datasets, training and detection, the registry, the Durable workflow."""
