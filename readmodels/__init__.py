"""The read models' schema and queries: the projector writes through it, the gateway reads.

    keys       where each read model lives in Redis (base prefix, generations, keys)
    rows       the rows (order summary, stock levels, balances) and their hash form
    queries    ReadModels: rows, pages and freshness, as the gateway serves them
Imports no app (tests/unit/test_architecture.py).
"""
