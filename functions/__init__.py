"""Azure Functions triggers: one blueprint per trigger family (thin doors into ``shared``)."""
