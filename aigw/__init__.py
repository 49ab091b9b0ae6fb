"""The `aigw` command-line client of the aigw management API (SPEC §6); see `aigw.cli`."""
