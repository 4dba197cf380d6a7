"""`hoop-tui demo`: the whole system on one laptop in one command."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from hoop_tui.demo.environment import DemoEnvironment


@click.command("demo")
@click.option("--headless", is_flag=True, help="No console: log the demo agent's outcomes instead.")
@click.option("--state-dir", default="./hoop-demo", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--port", default=15432, show_default=True, help="Gateway Postgres port on 127.0.0.1 (0 = any)."
)
@click.option("--ssh-port", default=2222, show_default=True, help="Gateway SSH port on 127.0.0.1 (0 = any).")
@click.option("--rounds", default=0, help="Stop after this many agent rounds (0 = run until Ctrl-C).")
@click.option("--review-timeout", default="2m", show_default=True, help="How long a held statement waits.")
def demo_command(
    headless: bool, state_dir: Path, port: int, ssh_port: int, rounds: int, review_timeout: str
) -> None:
    """Embedded PostgreSQL with fake customer data, an SSH host, the gateway, and a demo agent."""
    from hoop_tui.demo.environment import AGENT_GROUP, DemoEnvironment, run_demo_agent

    log_format = "%(asctime)s %(name)s %(message)s"
    if headless:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format=log_format)
    else:  # the console owns the terminal: the gateway's and the agent's lines go to a file instead
        state_dir.mkdir(parents=True, exist_ok=True)
        logging.basicConfig(level=logging.INFO, filename=state_dir / "demo.log", format=log_format)
    environment = DemoEnvironment(
        state_dir, gateway_port=port, review_timeout=review_timeout, ssh_port=ssh_port
    )
    # Closing the terminal (SIGHUP) or `kill` (SIGTERM) must still stop the embedded PostgreSQL and the
    # gateway: turned into SystemExit, they unwind through the `finally` below like Ctrl-C does.
    for number in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(number, _exit_on_signal)
    try:
        environment.start()
    except Exception as error:
        environment.stop()
        click.echo(f"hoop-tui: demo failed to start: {error}", err=True)
        sys.exit(1)
    try:
        click.echo(
            "Try the gateway yourself (reads come back masked; UPDATE and touch need approval; DROP and rm "
            "are denied):",
            err=True,
        )
        click.echo(environment.psql_command())
        click.echo(environment.ssh_command())
        agent_token = environment.token("demo-agent", [AGENT_GROUP])
        agent_url = environment.gateway_url(agent_token)
        ssh = (environment.ssh_address(), agent_token)
        if headless:
            report = lambda line: click.echo(line, err=True)  # noqa: E731
            try:
                asyncio.run(run_demo_agent(agent_url, report, rounds=rounds, ssh=ssh))
            except KeyboardInterrupt:
                pass
        else:
            run_demo_console(environment, agent_url, rounds, ssh)
    finally:
        environment.stop()


def _exit_on_signal(number: int, _frame: object) -> None:
    raise SystemExit(128 + number)


def run_demo_console(
    environment: DemoEnvironment, agent_url: str, rounds: int, ssh: tuple[tuple[str, int], str]
) -> None:
    """The console on the approvals screen, signed in as an on-call approver, while the demo agent runs on
    the gateway's own loop (it is async, and that loop outlives the console's)."""
    from hoop_tui.app import make_app
    from hoop_tui.commands.console import run_console
    from hoop_tui.demo.environment import run_demo_agent
    from proxy.control.local import LocalControl

    agent_log = logging.getLogger("hoop.demo.agent")
    gateway = environment.gateway
    agent = asyncio.run_coroutine_threadsafe(
        run_demo_agent(agent_url, agent_log.info, rounds=rounds, ssh=ssh), gateway.loop
    )
    operator_token = environment.token("you", ["oncall"])
    try:
        run_console(
            make_app(
                lambda: LocalControl.sign_in(gateway, operator_token),
                start_on="approvals",
                recordings_dir=environment.gateway.settings.recordings_dir,
            )
        )
    finally:
        agent.cancel()
