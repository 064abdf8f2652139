"""Harness: an evaluation harness and leaderboard for ML checkpoints."""

__version__ = "0.1.0"
