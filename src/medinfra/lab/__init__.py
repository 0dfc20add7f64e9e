"""The lab: a hospital topology as podman containers running systemd."""
