"""Risk controls: transfer limits (synchronous, in the hold's transaction) and fraud rules (asynchronous)."""
