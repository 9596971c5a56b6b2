"""Shared contracts and plumbing for the Kitakyushu x Taipei Tech placement platform.

No business rules live here: event contracts, the transactional outbox, the idempotent
consumer, settings, MongoDB/Kafka helpers, logging and auth.
"""
