"""salbook."""
