"""Hooks of the Octopods provider."""
