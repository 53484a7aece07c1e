"""Methods the papers compare one-pass decoding against: today the cramming baseline (arXiv 2502.13063)."""
