"""What people read: read models (status, history, stats) and the projector that builds them.

Stands only on ``events``; never imports ``services``, ``handlers`` or ``web``.
"""
