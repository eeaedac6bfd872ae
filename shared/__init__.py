"""meterwatch domain logic: telemetry, series, detection, storage and use cases.

Nothing here imports ``azure.functions``: the triggers in ``functions/`` call into this package.
"""
