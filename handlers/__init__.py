"""Who reacts: the Azure Functions app (``function_app.py``) and the local host that runs it.

Imports ``services``, ``projections`` and ``events``; nothing imports ``handlers`` but ``web``.
"""
