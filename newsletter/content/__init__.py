"""Statements, email templates and issues."""
