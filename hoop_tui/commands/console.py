"""`hoop-tui run`, `attach` and `replay`: the commands that open the Textual console (imported lazily)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from hoop_tui.commands.errors import EXIT_USAGE, fail, load_config_or_exit

if TYPE_CHECKING:
    from textual.app import App


def run_console(app: App[None]) -> None:
    """Run `app` in this terminal; a refusal it ends with (bad token, gateway gone) is one line on stderr."""
    app.run()
    failure = getattr(app, "failure", None)
    if failure:
        fail(failure)
    if app.return_code:
        sys.exit(app.return_code)


def require_token(token: str | None) -> str:
    if not token:
        fail("no operator token: pass --token or set HOOP_TOKEN", EXIT_USAGE)
    return token


@click.command("run")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False, exists=True))
@click.option("--token", envvar="HOOP_TOKEN", help="Operator token (default: $HOOP_TOKEN).")
def run_command(config_path: str, token: str | None) -> None:
    """The gateway embedded in this process, with the console on top."""
    from hoop_tui.app import make_app
    from proxy.control.local import LocalControl
    from proxy.gateway_thread import GatewayThread

    operator_token = require_token(token)
    config = load_config_or_exit(config_path)
    thread = GatewayThread(config)
    try:
        gateway = thread.start()
    except Exception as error:
        thread.stop()
        fail(f"the gateway failed to start: {error}")
    try:
        recordings_dir = config.gateway.recordings_dir
        run_console(
            make_app(lambda: LocalControl.sign_in(gateway, operator_token), recordings_dir=recordings_dir)
        )
    finally:
        thread.stop()


@click.command("attach")
@click.argument("address")
@click.option("--token", envvar="HOOP_TOKEN", help="Operator token (default: $HOOP_TOKEN).")
@click.option(
    "--ca-file",
    type=click.Path(dir_okay=False, exists=True),
    help="CA certificate for a tcp:// address (default: the system's CAs).",
)
def attach_command(address: str, token: str | None, ca_file: str | None) -> None:
    """The console on a remote gateway's control API ("unix:PATH" or "tcp://HOST:PORT")."""
    from hoop_tui.app import make_app
    from proxy.control.client import ControlClient

    operator_token = require_token(token)
    run_console(make_app(lambda: ControlClient.connect(address, operator_token, ca_file=ca_file)))


@click.command("replay")
@click.argument("recording", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--mask",
    "mask_entities",
    default="",
    metavar="ENTITIES",
    help="Mask these entities further as shown, e.g. email,phone (the file stays as recorded).",
)
def replay_command(recording: Path, mask_entities: str) -> None:
    """The player on one recording file, or the recordings browser on a directory of them."""
    from hoop_tui.app import make_replay_app
    from proxy.masking.render import viewer_masker

    entities = frozenset(name.strip() for name in mask_entities.split(",") if name.strip())
    try:
        viewer_masker(entities)
    except ValueError as error:
        fail(str(error), EXIT_USAGE)
    run_console(make_replay_app(recording, entities))
