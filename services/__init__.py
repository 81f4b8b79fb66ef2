"""What the system does: the execution decider and command service, tools, blobs and publishing.

Stands only on ``events``; never imports ``projections``, ``handlers`` or ``web``.
"""
