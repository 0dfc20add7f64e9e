"""The on-call rota (oncall.yml beside hospital.yml): who holds each role when, and how they are reached."""
