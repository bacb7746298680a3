"""Cloutsy data service: PostgreSQL models, JSON API and analytics."""
