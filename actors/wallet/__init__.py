"""Wallet: a customer's balance and the payment holds orders place on it."""
