"""The Functions app: composition only (one blueprint per trigger family)."""

from __future__ import annotations

import logging

import azure.durable_functions as df
import azure.functions as func

from functions import api, history, ingest, multivariate, univariate

logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)

# A Durable app: it registers plain blueprints and the Durable one (multivariate training).
app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(ingest.bp)
app.register_functions(univariate.bp)
app.register_functions(history.bp)
app.register_functions(multivariate.bp)
app.register_functions(api.bp)
