"""`hoop-tui demo`: an embedded Postgres full of fake people, the gateway in front of it, and a demo agent."""
