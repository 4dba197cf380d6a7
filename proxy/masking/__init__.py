"""Personal-data and secret detection and masking."""
