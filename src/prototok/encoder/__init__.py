"""A learned encoder: text -> (e, m) in one pass of a small network, trained end to end through the frozen LM."""
