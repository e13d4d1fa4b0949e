"""SynthBox: a self-hosted background-job appliance."""

__version__ = "0.1.0"
