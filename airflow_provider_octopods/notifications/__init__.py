"""Notifiers of the Octopods provider."""
