"""The `hoop-tui` command line: one click group; subcommands live in hoop_tui/commands/ and import lazily."""

from __future__ import annotations

import click

from hoop_tui.commands.approvals import approvals_group
from hoop_tui.commands.console import attach_command, replay_command, run_command
from hoop_tui.commands.demo import demo_command
from hoop_tui.commands.gateway import init_command, serve_command
from hoop_tui.commands.grants import grants_group
from hoop_tui.commands.sessions import sessions_group
from hoop_tui.commands.token import token_group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hoop-tui")
def main() -> None:
    """hoop-tui: an identity-aware gateway for AI agents, and the console to answer for them."""


main.add_command(demo_command)
main.add_command(init_command)
main.add_command(serve_command)
main.add_command(run_command)
main.add_command(attach_command)
main.add_command(replay_command)
main.add_command(token_group)
main.add_command(approvals_group)
main.add_command(sessions_group)
main.add_command(grants_group)

try:  # the recordings commands land with the recordings package
    from hoop_tui.commands.recordings import export_command, recordings_group, verify_command
except ImportError:  # pragma: no cover - only while recordings/ is being built
    pass
else:
    main.add_command(verify_command)
    main.add_command(export_command)
    main.add_command(recordings_group)


if __name__ == "__main__":
    main()
