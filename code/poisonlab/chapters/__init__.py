"""The book's chapters, one package each (named after the chapter's .qmd, with underscores):

- `experiment`: the CLI experiment (`poisonlab run <name>`), its parameters, metrics and data;
- `sweeps`, `studies`, `laws`: what the chapter and its tests compute with it (sweeps and their
  summaries, studies that are not sweeps, the laws checked against theory);
- `theory`: the chapter's derivations (sympy) and numeric predictions.
"""
