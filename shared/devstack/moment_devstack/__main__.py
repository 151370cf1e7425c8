"""`python -m moment_devstack`: the development stack's command line."""

from moment_devstack.cli import app

app(prog_name="python -m moment_devstack")
