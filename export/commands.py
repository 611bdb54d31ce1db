"""``prime export NAME CKPT -o OUT``: every exporter in the registry as a sub-command (``onnx``, ``tensorrt``
and any plugin's), contributed to ``prime`` through the ``register_commands`` hook."""

from __future__ import annotations

from prime_core import hookimpl


@hookimpl
def register_commands(commands):
    from prime_core.api import get_registry

    from .arguments import add_checkpoint_arguments

    registry = get_registry()
    export = commands.add_parser("export", help="compile one sampler step for another runtime (ONNX, TensorRT)",
                                 description="Exporters are looked up in the registry; plugins add more.")
    names = export.add_subparsers(dest="exporter", required=True, metavar="EXPORTER")
    for name in registry.names("exporter"):
        component = registry.get("exporter", name)
        doc = (component.obj.__doc__ or name).strip().splitlines()[0]
        aliases = ["trt"] if name == "tensorrt" else []  # `prime export trt`, like `python -m export.trt`
        sp = names.add_parser(name, aliases=aliases, help=f"{doc} [{component.distribution}]", description=doc)
        sp.set_defaults(exporter=name)  # the registered name, also when invoked by an alias
        add_checkpoint_arguments(sp, f"step.{'engine' if name == 'tensorrt' else name}", "file to write")
        component.obj.add_arguments(sp)
        sp.set_defaults(func=_run)


def _run(args) -> int:
    from prime_core.api import get_registry

    from .arguments import exporter_options

    exporter = get_registry().build("exporter", args.exporter)
    path = exporter.export(args.checkpoint, args.output, **exporter_options(args))
    print(f"prime export {args.exporter}: done, {path}")
    return 0
