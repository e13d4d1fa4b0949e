"""SynthBox: a self-hosted background-job appliance."""

__version__ = "0.2.0"
