"""The real ``hri_msgs`` message definitions, carried in ``msg/`` (hri_msgs 0.8.0, BSD: see
``msg/NOTICE``), and the CDR serialisation of mapped messages with rosbags.

ROS 2 cannot be installed here (Debian 12 has no rclpy), so the mapping is checked by building
each :class:`~realtime_fer.bridges.ros4hri.mapping.RosMessage` as a rosbags message of the type
its ``.msg`` text defines (every field present, no field unknown, fixed arrays of the right
length) and serialising it to CDR, the bytes a ROS 2 publisher sends. rosbags (``pip install
rosbags``, in the ``dev`` extra) is imported only here, only when asked for.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import numpy as np

from realtime_fer.errors import FerError

PACKAGE = "hri_msgs"
#: The carried definitions: message name -> ``msg/<name>.msg``.
MESSAGES = ("Expression", "FacialActionUnits", "IdsList", "NormalizedRegionOfInterest2D")

_DTYPES = {
    "bool": np.bool_, "byte": np.uint8, "char": np.uint8, "int8": np.int8, "uint8": np.uint8,
    "int16": np.int16, "uint16": np.uint16, "int32": np.int32, "uint32": np.uint32,
    "int64": np.int64, "uint64": np.uint64, "float32": np.float32, "float64": np.float64,
}  # fmt: skip


def msg_text(name: str) -> str:
    """The text of ``msg/<name>.msg`` as carried in the package."""
    if name not in MESSAGES:
        raise ValueError(f"no carried definition {name!r}; expected one of {', '.join(MESSAGES)}")
    return resources.files(__package__).joinpath("msg", f"{name}.msg").read_text(encoding="utf-8")


def typestore() -> Any:
    """A rosbags type store (ROS 2 Humble's standard types) with the carried ``hri_msgs`` types.

    Raises:
        FerError: rosbags is not installed.
    """
    try:
        from rosbags.typesys import Stores, get_typestore, get_types_from_msg
    except ImportError:
        raise FerError("rosbags is not installed (pip install rosbags): it is needed to serialise ROS messages without ROS 2") from None
    store = get_typestore(Stores.ROS2_HUMBLE)
    types: dict[str, Any] = {}
    for name in MESSAGES:
        types.update(get_types_from_msg(msg_text(name), f"{PACKAGE}/msg/{name}"))
    store.register(types)
    return store


def build(store: Any, typename: str, fields: dict[str, Any]) -> Any:
    """The rosbags message ``typename`` with ``fields`` (nested plain data).

    Raises:
        ValueError: a field missing or unknown (the mapping and the definition disagree).
    """
    from rosbags.typesys.base import Nodetype

    defs = store.fielddefs[typename][1]
    names = [n for n, _ in defs]
    unknown = set(fields) - set(names)
    missing = set(names) - set(fields)
    if unknown or missing:
        raise ValueError(f"{typename}: fields {sorted(missing)} missing, {sorted(unknown)} not in the definition")
    kwargs = {}
    for name, (nodetype, detail) in defs:
        value = fields[name]
        if nodetype == Nodetype.NAME:
            kwargs[name] = build(store, detail, value)
        elif nodetype in (Nodetype.ARRAY, Nodetype.SEQUENCE):
            (sub_type, sub_detail), _ = detail
            if sub_type == Nodetype.BASE and sub_detail[0] in _DTYPES:
                kwargs[name] = np.asarray(value, dtype=_DTYPES[sub_detail[0]])
            elif sub_type == Nodetype.NAME:
                kwargs[name] = [build(store, sub_detail, v) for v in value]
            else:  # strings
                kwargs[name] = list(value)
        else:
            kwargs[name] = value
    return store.types[typename](**kwargs)


def serialize(store: Any, typename: str, fields: dict[str, Any]) -> bytes:
    """CDR bytes of the message, as a ROS 2 publisher would send them."""
    return bytes(store.serialize_cdr(build(store, typename, fields), typename))


def deserialize(store: Any, typename: str, data: bytes) -> Any:
    """The rosbags message read back from CDR bytes."""
    return store.deserialize_cdr(data, typename)
