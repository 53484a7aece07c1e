"""Measurements on fitted solutions (arXiv 2505.21189, section 5), one module per question: how far apart
solutions lie (distances), whether two are joined by a path of solutions (paths), and how e and m compare with
the vocabulary's embeddings (vectors). The `prototok geometry` experiment stores them."""
