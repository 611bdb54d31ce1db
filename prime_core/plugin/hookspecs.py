"""Hook specifications: one ``register_<kind>(register)`` hook per component kind.

Lifecycle: discover (entry points in the ``prime`` group are loaded one by one) → configure (each hook below is
called once through pluggy's hook caller, so pluggy's order holds: ``tryfirst`` implementations, then the others
last registered first — installed plugins before the built-ins — then ``trylast``, with wrappers around them;
``register(name, component)`` records a class against the plugin that called it; a name already taken is skipped
and reported, and a built-in always keeps its name) → build (a config names components; the registry resolves
them) → train → sample / evaluate / export.
"""

import pluggy

#: the pluggy project name, which is also the entry-point group plugins are found in
ENTRY_POINT_GROUP = "prime"
#: the distribution whose plugin holds the built-ins (a built-in always keeps its name)
CORE_DISTRIBUTION = "prime-core"

hookspec = pluggy.HookspecMarker(ENTRY_POINT_GROUP)
hookimpl = pluggy.HookimplMarker(ENTRY_POINT_GROUP)


@hookspec
def register_maps(register):
    """Register sub-token maps (subclasses of SubTokenMap taking ``(num_classes, ell, **model.map_options)``)."""


@hookspec
def register_schedules(register):
    """Register noise schedules (subclasses of NoiseSchedule)."""


@hookspec
def register_backbones(register):
    """Register backbones (subclasses of Backbone taking ``(spec, **options)``)."""


@hookspec
def register_heads(register):
    """Register parameterizations (subclasses of Parameterization)."""


@hookspec
def register_samplers(register):
    """Register samplers (subclasses of Sampler)."""


@hookspec
def register_tokenizers(register):
    """Register tokenizers (subclasses of Tokenizer)."""


@hookspec
def register_datasets(register):
    """Register datasets (subclasses of Dataset)."""


@hookspec
def register_trainers(register):
    """Register trainers (subclasses of Trainer)."""


@hookspec
def register_exporters(register):
    """Register exporters (subclasses of Exporter)."""


@hookspec
def register_metrics(register):
    """Register metrics (subclasses of Metric); set ``is_bound = True`` only for valid NLL upper bounds."""


@hookspec
def register_runtimes(register):
    """Register sampler runtimes (subclasses of Runtime) for ``prime sample --runtime NAME``; eager torch is the
    built-in default and needs none."""


@hookspec
def register_commands(commands):
    """Add sub-commands to ``prime`` (phase: discover, while the command line is built).

    ``commands`` is the argparse sub-command group of ``prime``: ``sp = commands.add_parser(NAME, help=…)``
    adds ``prime NAME``; ``sp.set_defaults(func=…)`` names the function that runs it (it gets the parsed
    arguments and returns an exit code). Declare each NAME as an entry point in the ``prime.commands`` group
    pointing to the module with this hook, so that ``prime --help`` lists it without importing the module."""


@hookspec
def register_configs(register):
    """Register example configs shipped as package data: ``register(name, resource, description=None)``,
    ``resource`` a TOML file (``importlib.resources.files(__package__) / "configs" / "x.toml"`` or a path).
    Called when a config is looked up by name (``prime run --config main``, ``prime config list``)."""
