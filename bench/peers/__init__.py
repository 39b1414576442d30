"""Peers make bench runs beside Orderflow: the same work written another way."""
