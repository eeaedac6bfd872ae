"""The Functions app: composition only (one blueprint per trigger family)."""

from __future__ import annotations

import logging

import azure.functions as func

from functions import ingest, univariate

logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(ingest.bp)
app.register_functions(univariate.bp)
