"""CLI subcommands, one module each; `discover.cli` registers every module found here."""
