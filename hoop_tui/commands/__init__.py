"""Subcommands of the `hoop-tui` CLI, one module per group; none imports textual."""
