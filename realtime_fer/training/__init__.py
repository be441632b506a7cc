"""Offline training: datasets -> windows -> per-emotion classifiers -> model bundle."""
