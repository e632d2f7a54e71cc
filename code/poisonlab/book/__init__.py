"""The book's helpers for chapters: setup, numbers in prose, Markdown tables. Figures: `poisonlab.book.plots`."""
from .prose import Number, fmt, fmt_ci
from .context import STYLE, chapter, setup, use_style
from .tables import environment, environment_table, laws_table, markdown_table, sizes, sizes_table

__all__ = ["setup", "chapter", "use_style", "STYLE", "Number", "fmt", "fmt_ci", "markdown_table", "laws_table",
           "environment", "environment_table", "sizes", "sizes_table"]
