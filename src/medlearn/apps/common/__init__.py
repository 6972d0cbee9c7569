"""What every task package shares: the run directory helpers and the CLI option types."""
