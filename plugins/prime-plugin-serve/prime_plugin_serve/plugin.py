"""Entry point (group ``prime``, name ``serve``). prime-plugin-serve adds a command only (``prime serve``, through
``register_commands`` in commands.py, entry-point group ``prime.commands``) and registers no component; this
module makes the distribution visible to ``prime plugins`` and to ``PRIME_LOAD_PLUGINS``."""
