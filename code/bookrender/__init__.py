"""bookrender: render a Quarto book whose chapters execute Python, with Quarto or without it.

- `publish`: the Quarto engine (each chapter executed once into a notebook, then HTML and PDF).
- `render`: the book model, chapter execution (nbclient), and the Jupyter fallback engine (HTML
  by pandoc, with `crossref.lua` for Quarto's numbering, cross-references and callouts).
- `qmd`: reading .qmd files (cell options, includes with file:line), the bibliography's keys.
- `outputs`: which output folders a render may replace; staging and the swap.
- `lint`: book hygiene (`python -m bookrender.lint`).
- `kernelspec`: a python3 kernelspec without ipykernel's TCP warning.

It imports nothing from the package the chapters use; the chapters' numbers are theirs.
"""
