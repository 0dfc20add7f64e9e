"""Audits: targets from an inventory, transports that collect evidence, results and their summary."""
