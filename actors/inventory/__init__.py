"""Inventory: stock on hand per SKU and the reservations orders hold on it."""
