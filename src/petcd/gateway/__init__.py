"""The HTTP side of the client URL: JSON gateway, /health, /livez, /readyz, /version, /metrics."""
