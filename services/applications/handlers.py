"""Kafka subscribers of the applications service.

It consumes nothing yet: it is the source of the intake events. (Kept so every service has
the same rooms; status read-backs from matching would subscribe here.)
"""
