"""Measurements on fitted solutions: distances, paths between solutions, e and m against the vocabulary."""
