"""Published contracts of events other services send to Orderflow."""
