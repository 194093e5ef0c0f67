"""Editors' accounts and API tokens."""
