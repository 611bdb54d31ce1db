"""The plugin machinery (internal; plugin authors use ``prime_core.hookimpl`` and ``prime_core.api``).

- ``hookspecs``: the pluggy hook specifications, one ``register_<things>(register)`` per extension point
- ``registry``: loading plugins and looking components up by name (``Registry``)
- ``distributions``: which installed distribution a plugin comes from (install hints)
- ``shipped_configs``: configs that plugins ship (``register_configs``)
- ``commands``: sub-commands that plugins add to ``prime`` (``register_commands``)

Imports only the foundation modules (``errors``, ``interfaces``, ``cliargs``); it constructs no built-in.
"""
