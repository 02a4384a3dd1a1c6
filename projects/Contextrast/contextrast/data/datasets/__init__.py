"""Registration of the real datasets (import side effect)."""
