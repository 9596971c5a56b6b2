"""Notifications service: owner of contacts (private copy), the message log and delivery."""
