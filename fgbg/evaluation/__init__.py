"""Scoring generated videos: metrics and the eval runner."""
