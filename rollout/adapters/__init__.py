"""One module per external system; each wraps its SDK's errors in ``rollout.errors``."""
