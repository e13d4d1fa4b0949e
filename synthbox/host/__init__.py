"""What hosts the engine: one `serve` process, the cluster supervisor, systemd (install,
notify) and the doctor."""
