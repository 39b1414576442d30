"""The gateway app: Orderflow's public HTTP API."""
