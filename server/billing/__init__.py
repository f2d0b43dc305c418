"""Billing: plans and their AI allowance, Stripe checkout and portal, webhooks, reconciliation."""
