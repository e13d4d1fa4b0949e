"""Which code runs an agent of each kind, and what a failure to finish becomes."""

from __future__ import annotations

from collections.abc import Callable

from synthbox.orchestration.agents.base import (
    MAX_OUTPUT_BYTES,
    AgentCall,
    AgentOutcome,
    AgentStopped,
    AgentTimedOut,
    OutputTooLarge,
    command_line,
    python_agent_argv,
    run_command,
    run_http,
)
from synthbox.orchestration.agents.repo_scan import scan_repository

KINDS: dict[str, Callable[[AgentCall], AgentOutcome]] = {
    "http": run_http,
    "command": lambda call: run_command(call, command_line(call.config)),
    "python": lambda call: run_command(call, python_agent_argv(call.config["entryPoint"])),
    "repo-scan": scan_repository,
}


def run_agent(call: AgentCall) -> AgentOutcome:
    run = KINDS.get(call.kind)
    if run is None:
        return AgentOutcome("failed", error=f"unknown agent kind {call.kind!r}")
    try:
        return run(call)
    except AgentTimedOut:
        return AgentOutcome("timed_out", error=f"timed out after {call.timeout:g} s")
    except AgentStopped:
        return AgentOutcome("failed", error="stopped: the instance is shutting down")
    except OutputTooLarge:
        return AgentOutcome("failed", error=f"printed more than {MAX_OUTPUT_BYTES} bytes")
