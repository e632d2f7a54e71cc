"""poisonlab: data-poisoning attacks against simple models, and what defends them.

The package behind the book: data -> poison -> train -> measure -> fit -> figure/table.
"""
__version__ = "0.1.0"

from .profile import Profile, get_profile  # noqa: F401
