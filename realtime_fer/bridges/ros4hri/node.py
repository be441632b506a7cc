"""The rclpy node of ``realtime-fer bridge ros4hri``: publishes the mapped messages on ROS 2.

It needs ROS 2 (``rclpy``) and the ``hri_msgs`` package on the machine (a robot with ROS 2
sourced, ``apt install ros-<distro>-hri-msgs``); :func:`import_ros` fails with one clear
:class:`~realtime_fer.errors.FerError` line where they are missing. Everything else (the
mapping, the loop) lives in :mod:`.mapping` and :mod:`.bridge`, which run and are tested without
ROS. One publisher per topic, created on first use; a face's publishers are destroyed when the
face is no longer tracked (REP-155: its namespace goes away with it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

from realtime_fer.bridges.ros4hri.bridge import Ros4hriBridge
from realtime_fer.bridges.ros4hri.mapping import MSG_TYPES, Ros4hriMapper, Ros4hriOptions, RosMessage
from realtime_fer.errors import FerError

log = logging.getLogger(__name__)


def import_ros() -> tuple[Any, dict[str, type]]:
    """``rclpy`` and the hri_msgs message classes by ROS 2 type name.

    Raises:
        FerError: rclpy or hri_msgs cannot be imported (one line saying which and what to do).
    """
    try:
        import rclpy
    except Exception as exc:  # ImportError, or a broken ROS install's OSError
        raise FerError(
            f"ROS 2 is not available here (cannot import rclpy: {exc}); run the bridge on a machine with ROS 2 "
            "sourced (e.g. source /opt/ros/humble/setup.bash) and hri_msgs installed"
        ) from None
    try:
        from hri_msgs.msg import Expression, FacialActionUnits, IdsList, NormalizedRegionOfInterest2D
    except Exception as exc:
        raise FerError(f"hri_msgs is not available (cannot import hri_msgs.msg: {exc}); install it, e.g. apt install ros-humble-hri-msgs") from None
    classes = {
        MSG_TYPES["expression"]: Expression,
        MSG_TYPES["facs"]: FacialActionUnits,
        MSG_TYPES["tracked"]: IdsList,
        MSG_TYPES["roi"]: NormalizedRegionOfInterest2D,
    }
    return rclpy, classes


def fill(message: Any, fields: dict[str, Any]) -> Any:
    """Set a ROS message's fields from nested plain data (sub-messages recursively)."""
    for name, value in fields.items():
        if isinstance(value, dict):
            fill(getattr(message, name), value)
        else:
            setattr(message, name, value)
    return message


class RclpyPublishers:
    """One rclpy publisher per topic, created on first use.

    Args:
        node: the rclpy node.
        classes: ROS 2 type name -> message class.
        depth: the publishers' history depth (QoS keep-last).
    """

    def __init__(self, node: Any, classes: dict[str, type], depth: int = 10) -> None:
        self.node = node
        self.classes = classes
        self.depth = depth
        self._publishers: dict[str, Any] = {}

    def __call__(self, msg: RosMessage) -> None:
        cls = self.classes[msg.type]
        pub = self._publishers.get(msg.topic)
        if pub is None:
            pub = self._publishers[msg.topic] = self.node.create_publisher(cls, msg.topic, self.depth)
        pub.publish(fill(cls(), msg.fields))

    def retire(self, face_ids: Sequence[str]) -> None:
        """Destroy the publishers of these faces' ``/humans/faces/<id>/`` topics."""
        prefixes = tuple(f"/humans/faces/{fid}/" for fid in face_ids)
        for topic in [t for t in self._publishers if t.startswith(prefixes)]:
            self.node.destroy_publisher(self._publishers.pop(topic))


@dataclass
class NodeOptions:
    """How the node connects and runs (flags of ``realtime-fer bridge ros4hri``)."""

    endpoints: list[str]
    topics: list[str]
    mapping: Ros4hriOptions
    tracked_period_s: float = 1.0
    node_name: str = "realtime_fer_ros4hri"
    curve_server_key: str | None = None
    curve_secret_key: str | None = None


def run_node(options: NodeOptions) -> int:
    """Run the bridge until ROS shuts down or Ctrl-C; returns the exit code."""
    rclpy, classes = import_ros()
    from realtime_fer.publish import Subscriber

    rclpy.init()
    node = rclpy.create_node(options.node_name)
    publishers = RclpyPublishers(node, classes)
    try:
        endpoints = options.endpoints if len(options.endpoints) > 1 else options.endpoints[0]
        with Subscriber(endpoints, topics=options.topics, curve_server_key=options.curve_server_key, curve_secret_key=options.curve_secret_key) as sub:
            bridge = Ros4hriBridge(sub, Ros4hriMapper(options.mapping), publishers, on_removed=publishers.retire, tracked_period_s=options.tracked_period_s)
            log.info("bridging %s (%s) to ROS4HRI topics as node %s", ", ".join(options.endpoints), ", ".join(options.topics), options.node_name)
            while rclpy.ok():
                bridge.step(timeout=0.05)
                rclpy.spin_once(node, timeout_sec=0.0)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0
