"""Who reacts, and how a process is wired: the Azure Functions app (``function_app.py``), the local
host that runs it, and the composition root the web and the Functions share (``settings.py``,
``bootstrap.py``).

Imports ``services``, ``projections`` and ``events``; nothing imports ``handlers`` but ``web``.
"""
