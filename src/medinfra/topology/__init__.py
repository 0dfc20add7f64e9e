"""The hospital topology: model, loading and validation."""

from medinfra.topology.load import load_topology
from medinfra.topology.model import Flow, Host, PortRange, Site, SlaClass, Topology, Zone

__all__ = ["Flow", "Host", "PortRange", "Site", "SlaClass", "Topology", "Zone", "load_topology"]
