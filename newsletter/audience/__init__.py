"""Subscribers, lists, subscriptions and consent."""
