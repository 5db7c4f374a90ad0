"""instrumentors."""
