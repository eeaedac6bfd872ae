"""The demo: the synthetic household, plots and an Azurite launcher (outside the domain rooms)."""
