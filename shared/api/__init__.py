"""meterwatch's Anomaly Detector v1.1 REST API (a drop-in for the retired service).

:func:`shared.api.app.create_app` builds the ASGI application; ``functions/api.py`` serves it in
the function app and ``meterwatch serve`` (:mod:`shared.cli.serve`) on its own.
"""
