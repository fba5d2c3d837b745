"""Sensors of the Octopods provider."""
