"""Frontends: external model formats to the IR."""
