# Developer shortcuts; every recipe uses the project's own virtual environment in .venv.

venv := ".venv/bin"

# Install, then start the whole demo (Postgres, gateway, demo agent)
demo:
    python3 -m venv .venv && {{venv}}/pip install -q -e '.[fast]' && {{venv}}/hoop-tui demo

# Install with test extras and run the test suite
test *ARGS:
    python3 -m venv .venv && {{venv}}/pip install -q -e '.[test,fast]' && {{venv}}/python -m pytest {{ARGS}}

# Gateway vs direct Postgres vs pgbouncer (pgbench -S and bulk rows)
bench *ARGS:
    {{venv}}/python bench/pg_bench.py {{ARGS}}

# Lint and format check
lint:
    {{venv}}/ruff check . && {{venv}}/ruff format --check .
