"""Monitoring: scrape and probe targets from the topology, exporter credentials."""
