"""secretrun: run a command with secrets from your stores in its environment."""

__version__ = "0.1.0"
