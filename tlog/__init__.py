"""tlog: the transparency log server (storage, sequencer, HTTP API, CLI)."""

__version__ = "0.1.0"
