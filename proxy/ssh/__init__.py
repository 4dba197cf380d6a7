"""The SSH data path: command-line analysis for exec requests."""
