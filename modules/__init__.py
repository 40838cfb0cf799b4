"""Game feature modules: one package per feature; its ``__init__.py`` has ``HANDLERS``. See docs/modules.md."""
