"""Named, versioned prompt templates from config/templates/, expanded as requests arrive."""

from pipeline.templates.catalog import TemplateCatalog, render
from pipeline.templates.loader import TemplateVersion, load_directory, load_file

__all__ = ["TemplateCatalog", "TemplateVersion", "load_directory", "load_file", "render"]
