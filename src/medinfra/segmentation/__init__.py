"""Network segmentation: nftables trust zones rendered from the topology's zones and flows."""
