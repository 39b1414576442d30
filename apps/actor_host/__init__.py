"""The actor host app: hosts Orderflow's actors behind a daprd sidecar."""
