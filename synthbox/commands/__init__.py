"""The `synthbox` subcommands, one module per concern; `synthbox.cli` assembles them."""
