"""Loading pydantic settings so that bad configuration fails fast with a clear message."""
