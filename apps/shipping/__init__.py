"""A simulated shipping partner: consumes confirmed orders, answers on the shipments topic."""
