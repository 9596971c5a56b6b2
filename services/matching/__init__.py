"""Matching service: owner of match rounds, proposals, responses and placements."""
