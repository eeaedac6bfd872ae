"""meterwatch benchmarks: ``bench/run`` compares meterwatch with the reference detector."""
