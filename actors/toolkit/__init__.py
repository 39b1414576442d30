"""The actor toolkit: what every Orderflow actor stands on."""
