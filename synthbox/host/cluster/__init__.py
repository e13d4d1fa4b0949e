"""Cluster mode, PM2 built in: `synthbox start -i N` runs N `serve` children on one
listening socket, keeps them alive, and answers `status`, `scale`, `reload`, `restart`,
`stop` over a control socket in the data directory."""
