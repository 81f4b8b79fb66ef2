"""How people and programs reach MagicToolbox: the Django project (admin, health, commands).

The top layer: it may import every other package of ours, and none of them imports it.
"""
