"""The read side: projects domain events into Redis read models and rebuilds them."""
