"""In-call features and service codes; one module per feature."""
