"""The orchestration queue: projects, their agents, and the triggers that run them."""
