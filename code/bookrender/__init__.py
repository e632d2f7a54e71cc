"""bookrender: render a Quarto book whose chapters execute Python, with Quarto or without it.

- `render`: the entry points: `poisonlab render` (the engine choice) and `execute_chapter`.
- `publish`: the Quarto engine (each chapter executed once into a notebook, then HTML and PDF).
- `jupyter_engine`: the Jupyter fallback engine (HTML by pandoc, with `crossref.lua` for Quarto's
  numbering, cross-references and callouts).
- `notebooks`: the chapter notebooks: built, executed (nbclient), inline values, errors.
- `model`: the book: `_quarto.yml`, its chapters and their numbers, the profiles.
- `qmd`: reading .qmd files (cell options, includes with file:line), the bibliography's keys.
- `outputs`: which output folders a render may replace; staging and the swap.
- `lint`: book hygiene (`python -m bookrender.lint`).
- `kernelspec`: a python3 kernelspec without ipykernel's TCP warning.

It imports nothing from the package the chapters use; the chapters' numbers are theirs.
"""
