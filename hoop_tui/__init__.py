"""hoop-tui: the Textual console and the `hoop-tui` command line."""
