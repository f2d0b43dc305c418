"""Accounts and authentication: passwords, tokens, 2FA, guards."""
