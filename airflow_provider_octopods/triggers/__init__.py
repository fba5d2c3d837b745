"""Triggers of the Octopods provider."""
