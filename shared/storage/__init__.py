"""Storage: the blob client (one per process) and the one module that names every blob."""
