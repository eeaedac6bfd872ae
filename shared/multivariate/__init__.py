"""Multivariate detection, one module per job.

Pure (no storage): ``spec`` (training spec, windows), ``uploads`` (the MultiTable zip and
OneTable CSV, read safely), ``datasets`` (limits, align policy, alignment), ``training``,
``detection`` (the v1.1 batch result), ``export`` (the portable model zip), ``datasource``
(the one ``dataSource`` policy). Light (standard library; imported by the function app):
``ids`` (hashes, deterministic ids), ``payloads`` (typed inputs and outputs of every step),
``statuses``, ``workflow`` (every Durable name, both orchestrations, start-unless-exists).
With storage: ``registry`` (models, artifacts, results), ``service`` (what the API, ``serve``
and the activities call), ``activities`` (the steps of both orchestrations),
``local_runner`` (both orchestrations in process: ``serve``, the demo, tests).
"""
