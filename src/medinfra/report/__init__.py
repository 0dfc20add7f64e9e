"""Report formats rendered from one findings document."""
