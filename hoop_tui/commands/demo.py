"""`hoop-tui demo`: the whole system on one laptop in one command."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import click


@click.command("demo")
@click.option("--headless", is_flag=True, help="No console: log the demo agent's outcomes instead.")
@click.option("--state-dir", default="./hoop-demo", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--port", default=15432, show_default=True, help="Gateway Postgres port on 127.0.0.1 (0 = any)."
)
@click.option("--rounds", default=0, help="Stop after this many agent rounds (0 = run until Ctrl-C).")
@click.option("--review-timeout", default="2m", show_default=True, help="How long a held statement waits.")
def demo_command(headless: bool, state_dir: Path, port: int, rounds: int, review_timeout: str) -> None:
    """Embedded PostgreSQL with fake customer data, the gateway, and a demo agent."""
    from hoop_tui.demo.environment import AGENT_GROUP, DemoEnvironment, run_demo_agent

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    environment = DemoEnvironment(state_dir, gateway_port=port, review_timeout=review_timeout)
    try:
        environment.start()
    except Exception as error:
        environment.stop()
        click.echo(f"hoop-tui: demo failed to start: {error}", err=True)
        sys.exit(1)
    try:
        click.echo(
            "Try the gateway yourself (reads come back masked; UPDATE needs approval; DROP is denied):",
            err=True,
        )
        click.echo(environment.psql_command())
        if not headless:
            click.echo("hoop-tui: the console is not part of this build yet; running headless", err=True)
        agent_url = environment.gateway_url(environment.token("demo-agent", [AGENT_GROUP]))
        report = lambda line: click.echo(line, err=True)  # noqa: E731
        try:
            asyncio.run(run_demo_agent(agent_url, report, rounds=rounds))
        except KeyboardInterrupt:
            pass
    finally:
        environment.stop()
