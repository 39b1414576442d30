"""BeaconActor: a small diagnostic actor that proves the stack end to end."""
