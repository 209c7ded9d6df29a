"""The trained families: one module each, registered by name in :data:`FAMILIES` (imported when first asked for).

A family is a :class:`~mqarkit.gpu.frontier.protocol.StackedMixer`. A name that is not in the table and has the form
``"package.module:Class"`` names a user's own family, imported from the user's ``PYTHONPATH``.
"""

from __future__ import annotations

import importlib

from mqarkit.gpu.frontier.protocol import StackedMixer

# name -> "module:Class" (an explicit table: a family is never found by building a name from a string)
FAMILIES: dict[str, str] = {
    "attention": "mqarkit.gpu.frontier.families.attention:Attention",
    "based": "mqarkit.gpu.frontier.families.based:Based",
    "sliding_window": "mqarkit.gpu.frontier.families.sliding_window:SlidingWindow",
    "long_conv": "mqarkit.gpu.frontier.families.long_conv:LongConv",
    "mamba2": "mqarkit.gpu.frontier.families.mamba2:Mamba2",
    "rwkv4": "mqarkit.gpu.frontier.families.rwkv4:RWKV4",
    "rwkv7": "mqarkit.gpu.frontier.families.rwkv7:RWKV7",
    "gla": "mqarkit.gpu.frontier.families.gla:GLA",
    "delta_net": "mqarkit.gpu.frontier.families.delta_net:DeltaNet",
    "gated_delta_net": "mqarkit.gpu.frontier.families.gated_delta_net:GatedDeltaNet",
    "h3": "mqarkit.gpu.frontier.families.h3:H3",
    "hyena": "mqarkit.gpu.frontier.families.hyena:Hyena",
    "mamba": "mqarkit.gpu.frontier.families.mamba:Mamba",
}


def import_object(path: str, what: str) -> object:
    """The object at a user's ``"package.module:Name"``; a ``ValueError`` naming ``what`` if it is not there."""
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"{what}={path!r}: needs an import path 'package.module:Name'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"{what}={path!r}: cannot import module {module_name!r} ({exc})") from exc
    if not hasattr(module, attribute):
        raise ValueError(f"{what}={path!r}: module {module_name!r} has no attribute {attribute!r}")
    return getattr(module, attribute)


def family_class(name: str) -> type[StackedMixer]:
    """The :class:`StackedMixer` subclass of a registered family or of a user's ``"package.module:Class"``."""
    if not isinstance(name, str):
        raise ValueError(f"family={name!r}: needs a family name or an import path 'package.module:Class'")
    if name in FAMILIES:  # ours: imported directly, so a broken module raises as the bug it is
        module, _, attribute = FAMILIES[name].partition(":")
        return getattr(importlib.import_module(module), attribute)
    if ":" not in name:
        raise ValueError(
            f"family={name!r}: unknown; choose from {', '.join(FAMILIES)} or give 'package.module:Class' "
            "(a StackedMixer; a plain nn.Module goes under mixer = ...)"
        )
    cls = import_object(name, "family")
    if not (isinstance(cls, type) and issubclass(cls, StackedMixer)):
        raise ValueError(
            f"family={name!r}: {cls!r} is not a StackedMixer subclass (a plain nn.Module goes under mixer = ...)"
        )
    return cls
