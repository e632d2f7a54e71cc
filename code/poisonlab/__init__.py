"""poisonlab: attacks against machine-learning models, and what defends them.

The package behind the book, one subpackage per stage: data -> attacks -> train (models, defenses) -> metrics
-> lab (sweeps, cache) -> stats (intervals, fits, laws) -> book (figures, tables); chapters/<slug> for each chapter.
"""
__version__ = "0.1.0"
