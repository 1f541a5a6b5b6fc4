"""Sphinx configuration: Markdown pages (MyST), the API reference from the docstrings."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nnlayers  # noqa: E402

project = "nnlayers"
author = "the nnlayers developers"
release = nnlayers.__version__
version = release

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "examples"]
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

default_role = "py:obj"  # `Dense` in a docstring links to the class when it can
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_custom_sections = ["Shape"]
napoleon_use_ivar = True

html_theme = "furo"  # maintained, readable on phones; wide tables scroll inside the page
html_static_path = ["_static"]
html_css_files = ["tables.css"]
html_title = f"nnlayers {release}"
