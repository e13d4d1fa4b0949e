"""Queues a user defines as data (synthbox.toml or at run time), each with a handler of
one kind (`kinds/`: http, command, python, remote)."""
