"""Drills: failover rehearsals and scripted emergency-plan rehearsals (应急预案演练), and the evidence they leave."""

from medinfra.drill.evidence import DRILL_FORMAT, KINDS, PublishedDrill, check_document, publish_drill

__all__ = ["DRILL_FORMAT", "KINDS", "PublishedDrill", "check_document", "publish_drill"]
