"""The Functions runtime looks for ``function_app.py`` at the package root: this re-exports the
app from ``handlers/function_app.py``, where it is written and tested. Packaging copies this file,
``handlers/host.json`` and the project's packages into one folder (see README.md beside it)."""

from handlers.function_app import app  # noqa: F401 - the runtime indexes ``app``
