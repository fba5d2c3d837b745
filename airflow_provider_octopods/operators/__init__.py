"""Operators of the Octopods provider."""
