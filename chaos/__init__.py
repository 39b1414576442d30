"""The chaos suite: an order workload through the gateway under a fault schedule, then checks."""
